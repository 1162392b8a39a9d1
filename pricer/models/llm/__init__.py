"""LLM pricers: the OpenAI client, prompts, the answer cache, retrieval and fine-tuning.

Modules: ``client`` (client from config + environment, concurrent calls), ``prompts``
(templates and answer parsing), ``cache`` (on-disk answers), ``accounting`` (tokens, cost,
latency stats), ``failures`` (why items got no price, in one line), ``retrieval`` (nearest
training items), ``frontier`` (the pricer family), ``finetuning`` (the fine-tuning steps; the
tracked workflow is ``pricer.preparation.run_finetune``).
"""
