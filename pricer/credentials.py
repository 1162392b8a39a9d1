"""The words that mark a URL query parameter as a credential, in one place.

Two parts of pricer hide such a parameter's value: the LLM client, from the server URL it
keys its answer cache by and writes into the logged model (``pricer.models.llm.client``), and
the redaction of everything logged (``pricer.tracking.redaction``). Each kept its own list:
a word added to one left the other showing that credential. Models must not import tracking,
so the list lives here, beside both; it imports nothing, so a logged model ships it with its
code at no cost.
"""

from __future__ import annotations

# Matched anywhere in a parameter's name, case aside: ?api_key=, &access_token=, &sig= (a
# shared access signature), &X-Amz-Credential=. A parameter that chooses a deployment
# (api-version) is no credential, and stays as written.
QUERY_CREDENTIAL_WORDS = ("key", "token", "secret", "passw", "sig", "auth", "credential")

# The same words as a regular expression alternation (use it case-insensitively).
QUERY_CREDENTIAL = "|".join(QUERY_CREDENTIAL_WORDS)
