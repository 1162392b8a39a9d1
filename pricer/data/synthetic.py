"""Synthetic raw product records in the Amazon-Reviews-2023 ``raw_meta_<Category>`` schema.

The embedded, offline data source. Every record is drawn from a small hand-written catalog of
product types (8 categories) and priced by a log-additive model with real noise:

    log(price) = type base + brand tier + brand offset + spec effect (stronger for premium
                 brands) + pack size + material + variant + listing year + noise

so a model can learn a lot from words (type, brand, spec, pack counts), from numbers in the
details (weight, dimensions, rank) and from interactions, but never everything. The raw shape
is kept messy on purpose: price strings ("12.99", "$1,299.99", "None", ranges), junk and
duplicated records, and detail keys that downstream cleaning drops.

All vocabulary below is invented for this generator. Settings come from
``conf/data/synthetic.yaml`` (no defaults here: the YAML is the single source of settings).
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

RAW_COLUMNS = (
    "category",
    "main_category",
    "title",
    "description",
    "features",
    "details",
    "price",
    "store",
    "average_rating",
    "rating_number",
    "categories",
    "parent_asin",
    "images",
    "videos",
    "bought_together",
)

# ---------------------------------------------------------------------------------------------
# Catalog tables
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """One price-driving specification: detail key, title labels, log-price effect per level."""

    detail_key: str
    labels: tuple[str, ...]
    effects: tuple[float, ...]


def _numeric(key: str, values: tuple[float, ...], elasticity: float, fmt: str) -> _Spec:
    # Effect is elastic in the value and centred, so the type's base price is its typical price.
    logs = [math.log(v) for v in values]
    centre = sum(logs) / len(logs)
    labels = tuple(fmt.format(f"{v:g}") for v in values)
    return _Spec(key, labels, tuple(elasticity * (x - centre) for x in logs))


def _levels(key: str, *levels: tuple[str, float]) -> _Spec:
    return _Spec(key, tuple(label for label, _ in levels), tuple(e for _, e in levels))


_SPECS: dict[str, _Spec] = {
    "none": _Spec("", ("",), (0.0,)),
    "cable_ft": _numeric("Length", (3, 6, 10, 15, 25, 50), 0.3, "{} ft"),
    "wiper_in": _numeric("Length", (16, 18, 20, 22, 24, 26, 28), 0.3, "{} Inch"),
    "peak_amps": _numeric("Peak Current", (1000, 1500, 2000, 3000, 4000), 0.55, "{}A Peak"),
    "psi": _numeric("Maximum Pressure", (100, 120, 150, 160), 0.6, "{} PSI"),
    "wax_oz": _numeric("Volume", (8, 12, 16, 32, 64), 0.55, "{} oz"),
    "oil_qt": _numeric("Volume", (1, 5, 6), 0.8, "{} Quart"),
    "battery_ah": _numeric("Capacity", (35, 50, 70, 100), 0.6, "{}Ah"),
    "storage_gb": _numeric("Memory Storage Capacity", (32, 64, 128, 256, 512), 0.45, "{}GB"),
    "phone_gb": _numeric("Memory Storage Capacity", (64, 128, 256, 512), 0.35, "{}GB"),
    "ssd": _levels("Hard Disk Size", ("500GB", -0.45), ("1TB", -0.05), ("2TB", 0.3), ("4TB", 0.75)),
    "playtime_h": _numeric("Battery Life", (20, 30, 40, 60), 0.35, "{}H Playtime"),
    "audio_w": _numeric("Output Power", (10, 20, 40, 60, 100, 200), 0.4, "{}W"),
    "tv_in": _numeric("Screen Size", (32, 43, 50, 55, 65, 75), 1.6, "{} Inch"),
    "monitor_in": _numeric("Screen Size", (22, 24, 27, 32, 34), 1.3, "{} Inch"),
    "resolution": _levels(
        "Video Resolution", ("720p", -0.35), ("1080p", -0.05), ("2K", 0.2), ("4K", 0.5)
    ),
    "outlets": _numeric("Number of Outlets", (6, 8, 10, 12), 0.5, "{} Outlets"),
    "ports": _numeric("Number of Ports", (4, 6, 7, 10, 12), 0.5, "{} Port"),
    "wifi": _levels(
        "Wireless Standard",
        ("Wi-Fi 5", -0.35),
        ("Wi-Fi 6", 0.0),
        ("Wi-Fi 6E", 0.3),
        ("Wi-Fi 7", 0.7),
    ),
    "tripod_in": _numeric("Maximum Height", (50, 60, 67, 72), 0.8, "{} Inch"),
    "laptop_in": _numeric("Screen Size", (13, 14, 15.6, 17), 0.5, "{} Inch"),
    "lumens": _numeric("Brightness", (3000, 5000, 8000, 12000), 0.45, "{} Lumens"),
    "count": _numeric("Unit Count", (6, 12, 24, 36, 48), 0.6, "{} Count"),
    "paper_sheets": _numeric("Sheet Count", (500, 1500, 2500, 5000), 0.8, "{} Sheets"),
    "notebook_sheets": _numeric("Sheet Count", (70, 100, 150, 200), 0.4, "{} Sheets"),
    "shred_sheets": _numeric("Sheet Capacity", (6, 8, 12, 18, 24), 0.7, "{} Sheet"),
    "desk_in": _numeric("Width", (28, 32, 36, 42), 0.6, "{} Inch"),
    "board": _levels(
        "Size", ("24 x 36 Inch", -0.3), ("36 x 48 Inch", 0.05), ("48 x 72 Inch", 0.45)
    ),
    "ring_in": _numeric("Ring Size", (1, 1.5, 2, 3), 0.35, "{} Inch"),
    "volts": _numeric("Voltage", (12, 18, 20, 40, 60), 0.5, "{}V"),
    "blade_in": _numeric("Blade Size", (6.5, 7.25, 8.25, 10), 0.6, "{} Inch"),
    "pieces": _numeric("Number of Pieces", (20, 40, 75, 120, 250, 500), 0.4, "{} Piece"),
    "tape_ft": _numeric("Length", (16, 25, 30, 35), 0.4, "{} ft"),
    "bulb_w": _numeric("Wattage", (40, 60, 75, 100), 0.25, "{}W Equivalent"),
    "fan_in": _numeric("Blade Span", (42, 48, 52, 60), 0.7, "{} Inch"),
    "screws": _numeric("Number of Pieces", (50, 100, 200, 500, 1000), 0.55, "{} PCS"),
    "gallons": _numeric("Capacity", (2.5, 5, 8, 12, 16), 0.5, "{} Gallon"),
    "washer_psi": _numeric("Maximum Pressure", (1800, 2300, 3000, 3600), 0.9, "{} PSI"),
    "toolbox_in": _numeric("Size", (16, 19, 22, 26), 0.6, "{} Inch"),
    "amps": _numeric("Amperage", (6, 7.5, 10, 13), 0.5, "{} Amp"),
    "charge_w": _numeric("Output Wattage", (20, 30, 45, 65, 100), 0.45, "{}W"),
    "mah": _numeric("Battery Capacity", (5000, 10000, 20000, 26800), 0.45, "{} mAh"),
    "light_in": _numeric("Size", (6, 10, 12, 18), 0.6, "{} Inch"),
    "block_pcs": _numeric("Number of Pieces", (100, 250, 500, 1000, 1500), 0.5, "{} Pieces"),
    "puzzle_pcs": _numeric("Number of Pieces", (300, 500, 1000, 2000), 0.25, "{} Pieces"),
    "plush_in": _numeric("Height", (8, 12, 16, 24, 36), 0.7, "{} Inch"),
    "rc_scale": _levels("Scale", ("1:24", -0.4), ("1:16", -0.1), ("1:12", 0.2), ("1:10", 0.5)),
    "figure_in": _numeric("Height", (4, 6, 7, 12), 0.5, "{} Inch"),
    "ride_v": _numeric("Voltage", (6, 12, 24), 0.6, "{}V"),
    "trampoline_ft": _numeric("Diameter", (8, 10, 12, 14, 16), 1.0, "{} FT"),
    "mini_cuft": _numeric("Capacity", (1.7, 2.7, 3.1, 4.4), 0.6, "{} Cu Ft"),
    "fridge_cuft": _numeric("Capacity", (20, 22, 25, 28), 1.2, "{} Cu Ft"),
    "freezer_cuft": _numeric("Capacity", (3.5, 5, 7, 10), 0.7, "{} Cu Ft"),
    "ice_lb": _numeric("Ice Capacity", (26, 33, 40, 45), 0.5, "{} lbs/Day"),
    "hood_in": _numeric("Width", (30, 36), 1.0, "{} Inch"),
    "burners": _numeric("Number of Burners", (2, 4, 5), 0.6, "{} Burner"),
    "microwave_w": _numeric("Wattage", (700, 900, 1100, 1200), 0.8, "{} Watts"),
    "btu": _numeric("Cooling Capacity", (5000, 8000, 10000, 12000, 14000), 0.6, "{} BTU"),
    "pints": _numeric("Capacity", (22, 35, 50, 70), 0.5, "{} Pint"),
    "washer_lb": _numeric("Capacity", (8, 12, 17, 22), 0.6, "{} lbs"),
    "bottles": _numeric("Capacity", (12, 18, 24, 32, 46), 0.7, "{} Bottle"),
    "gauge": _levels(
        "String Gauge", ("Extra Light", -0.05), ("Light", 0.0), ("Medium", 0.05), ("Heavy", 0.12)
    ),
    "picks": _numeric("Unit Count", (12, 24, 50, 100), 0.5, "{} Picks"),
    "guitar_size": _levels("Size", ("1/2 Size", -0.5), ("3/4 Size", -0.25), ("Full Size", 0.15)),
    "amp_w": _numeric("Output Power", (10, 20, 40, 100), 0.55, "{} Watt"),
    "keys": _numeric("Number of Keys", (25, 37, 49, 61, 88), 0.8, "{}-Key"),
    "inputs": _numeric("Number of Inputs", (2, 4, 8), 0.7, "{} Input"),
    "ukulele": _levels(
        "Size", ("Soprano", -0.2), ("Concert", 0.0), ("Tenor", 0.15), ("Baritone", 0.25)
    ),
}

# Product types per category: (name, typical price USD, typical weight lb, spec kind,
# sold in multi-packs, department used for ``categories`` and the sales-rank sub-list).
_PRODUCT_TYPES: dict[str, tuple[tuple[str, float, float, str, bool, str], ...]] = {
    "Automotive": (
        ("Brake Pad Set", 38, 4.5, "none", False, "Brake System"),
        ("Oil Filter", 9, 0.8, "none", True, "Filters"),
        ("Cabin Air Filter", 14, 0.5, "none", True, "Filters"),
        ("Engine Air Filter", 18, 1.0, "none", True, "Filters"),
        ("Spark Plug", 7, 0.15, "none", True, "Ignition Parts"),
        ("Blade Fuse", 2.5, 0.02, "none", True, "Fuses"),
        ("Wiper Blade", 15, 0.7, "wiper_in", True, "Wipers & Washers"),
        ("LED Headlight Bulb", 28, 0.5, "none", True, "Lights & Lighting Accessories"),
        ("Car Floor Mats", 45, 6, "none", False, "Interior Accessories"),
        ("Seat Cover Set", 40, 4, "none", False, "Interior Accessories"),
        ("Car Phone Mount", 16, 0.4, "none", False, "Interior Accessories"),
        ("Portable Jump Starter", 75, 2.5, "peak_amps", False, "Tools & Equipment"),
        ("Tire Inflator", 40, 3, "psi", False, "Tools & Equipment"),
        ("Car Wax", 16, 1.2, "wax_oz", True, "Car Care"),
        ("Microfiber Cleaning Towel", 12, 0.8, "none", True, "Car Care"),
        ("Full Synthetic Motor Oil", 30, 5, "oil_qt", True, "Oils & Fluids"),
        ("Dash Cam", 70, 0.6, "resolution", False, "Car Electronics"),
        ("Car Battery", 150, 40, "battery_ah", False, "Batteries & Accessories"),
        ("Trailer Hitch Ball Mount", 35, 8, "none", False, "Towing Products"),
        ("Recovery Tow Strap", 22, 3, "cable_ft", False, "Towing Products"),
        ("Car Cover", 55, 6, "none", False, "Exterior Accessories"),
        ("Tonneau Cover", 450, 45, "none", False, "Exterior Accessories"),
        ("Exhaust Muffler", 95, 15, "none", False, "Exhaust & Emissions"),
        ("Alternator", 180, 14, "none", False, "Replacement Parts"),
        ("Radiator", 160, 18, "none", False, "Replacement Parts"),
        ("Shock Absorber", 65, 7, "none", True, "Suspension Parts"),
    ),
    "Electronics": (
        ("HDMI Cable", 11, 0.3, "cable_ft", True, "Cables"),
        ("USB Flash Drive", 12, 0.05, "storage_gb", True, "Data Storage"),
        ("microSD Memory Card", 15, 0.02, "storage_gb", True, "Data Storage"),
        ("Portable SSD", 90, 0.2, "ssd", False, "Data Storage"),
        ("Wireless Earbuds", 45, 0.2, "playtime_h", False, "Headphones"),
        ("Over-Ear Headphones", 70, 0.6, "playtime_h", False, "Headphones"),
        ("Bluetooth Speaker", 45, 1.5, "audio_w", False, "Portable Audio"),
        ("Smart TV", 380, 30, "tv_in", False, "Television & Video"),
        ("Computer Monitor", 190, 12, "monitor_in", False, "Monitors"),
        ("Wireless Mouse", 20, 0.2, "none", False, "Computer Accessories"),
        ("Mechanical Keyboard", 65, 2, "none", False, "Computer Accessories"),
        ("Webcam", 45, 0.4, "resolution", False, "Computer Accessories"),
        ("Surge Protector Power Strip", 22, 1.5, "outlets", False, "Power Accessories"),
        ("USB-C Hub", 30, 0.3, "ports", False, "Computer Accessories"),
        ("Wireless Router", 90, 1.5, "wifi", False, "Networking Products"),
        ("Soundbar", 150, 8, "audio_w", False, "Home Audio"),
        ("Action Camera", 180, 0.4, "resolution", False, "Camera & Photo"),
        ("Camera Tripod", 35, 3, "tripod_in", False, "Camera & Photo"),
        ("Laptop Sleeve", 20, 0.6, "laptop_in", False, "Computer Accessories"),
        ("Rechargeable AA Batteries", 20, 0.5, "none", True, "Batteries"),
        ("Adhesive Cable Clip", 3, 0.05, "none", True, "Cable Management"),
        ("Video Projector", 220, 6, "lumens", False, "Television & Video"),
        ("Drawing Tablet", 70, 1.5, "none", False, "Computer Accessories"),
    ),
    "Office_Products": (
        ("Gel Pens", 10, 0.3, "count", True, "Writing Supplies"),
        ("Sticky Notes", 9, 0.6, "count", True, "Paper"),
        ("Copy Paper", 30, 25, "paper_sheets", False, "Paper"),
        ("Spiral Notebook", 8, 0.6, "notebook_sheets", True, "Paper"),
        ("Desktop Stapler", 14, 0.8, "none", False, "Desk Accessories"),
        ("Desk Organizer", 22, 2, "none", False, "Desk Accessories"),
        ("File Folders", 15, 2, "count", True, "Filing Products"),
        ("Label Maker", 35, 1.2, "none", False, "Office Electronics"),
        ("Thermal Laminator", 40, 5, "none", False, "Office Electronics"),
        ("Paper Shredder", 80, 18, "shred_sheets", False, "Office Electronics"),
        ("Ergonomic Office Chair", 160, 35, "none", False, "Office Furniture"),
        ("Standing Desk Converter", 180, 35, "desk_in", False, "Office Furniture"),
        ("Dry Erase Whiteboard", 45, 10, "board", False, "Presentation Boards"),
        ("Ink Cartridge", 28, 0.3, "none", True, "Printer Supplies"),
        ("Toner Cartridge", 65, 2.5, "none", True, "Printer Supplies"),
        ("Scientific Calculator", 15, 0.4, "none", False, "Office Electronics"),
        ("LED Desk Lamp", 32, 3, "none", False, "Office Lighting"),
        ("Packing Tape", 15, 2, "count", True, "Shipping Supplies"),
        ("Three-Ring Binder", 9, 1.2, "ring_in", True, "Binders"),
        ("Highlighters", 8, 0.2, "count", True, "Writing Supplies"),
        ("Pencil Eraser", 1.2, 0.05, "none", True, "Writing Supplies"),
    ),
    "Tools_and_Home_Improvement": (
        ("Cordless Drill", 90, 4, "volts", False, "Power Tools"),
        ("Impact Driver", 110, 3.5, "volts", False, "Power Tools"),
        ("Circular Saw", 120, 10, "blade_in", False, "Power Tools"),
        ("Socket Set", 60, 12, "pieces", False, "Hand Tools"),
        ("Screwdriver Set", 22, 2, "pieces", False, "Hand Tools"),
        ("Tape Measure", 13, 0.8, "tape_ft", True, "Measuring & Layout"),
        ("LED Light Bulb", 14, 0.3, "bulb_w", True, "Light Bulbs"),
        ("Ceiling Fan", 150, 20, "fan_in", False, "Lighting & Ceiling Fans"),
        ("Kitchen Faucet", 110, 6, "none", False, "Kitchen & Bath Fixtures"),
        ("Shower Head", 35, 1.5, "none", False, "Kitchen & Bath Fixtures"),
        ("Smart Door Lock", 140, 4, "none", False, "Safety & Security"),
        ("Security Camera", 55, 1, "resolution", True, "Safety & Security"),
        ("Extension Cord", 20, 2, "cable_ft", True, "Electrical"),
        ("Wood Screws", 12, 2, "screws", False, "Hardware"),
        ("Work Gloves", 14, 0.3, "none", True, "Safety & Security"),
        ("Paint Roller Kit", 18, 2, "none", False, "Painting Supplies"),
        ("Wet Dry Vacuum", 120, 20, "gallons", False, "Shop Vacuums"),
        ("Electric Pressure Washer", 230, 30, "washer_psi", False, "Outdoor Power Tools"),
        ("Laser Level", 70, 1.5, "none", False, "Measuring & Layout"),
        ("Tool Box", 45, 10, "toolbox_in", False, "Tool Organizers"),
        ("Utility Knife", 10, 0.3, "none", True, "Hand Tools"),
        ("Wall Plate Cover", 5, 0.1, "none", True, "Electrical"),
        ("Drywall Anchor", 3, 0.05, "none", True, "Hardware"),
        ("Angle Grinder", 85, 6, "amps", False, "Power Tools"),
        ("Air Compressor", 180, 30, "gallons", False, "Air Tools"),
    ),
    "Cell_Phones_and_Accessories": (
        ("Phone Case", 12, 0.15, "none", False, "Cases, Holsters & Sleeves"),
        ("Tempered Glass Screen Protector", 9, 0.1, "none", True, "Screen Protectors"),
        ("USB-C Charging Cable", 10, 0.2, "cable_ft", True, "Cables"),
        ("Wall Charger", 18, 0.3, "charge_w", True, "Chargers & Power Adapters"),
        ("Wireless Charging Pad", 22, 0.4, "charge_w", False, "Chargers & Power Adapters"),
        ("Portable Power Bank", 32, 0.7, "mah", False, "Chargers & Power Adapters"),
        ("Car Charger", 13, 0.2, "charge_w", True, "Chargers & Power Adapters"),
        ("Adjustable Phone Stand", 14, 0.8, "none", False, "Stands"),
        ("Selfie Stick Tripod", 22, 0.9, "none", False, "Selfie Sticks"),
        ("Bluetooth Headset", 30, 0.1, "playtime_h", False, "Headsets"),
        ("Fitness Smartwatch", 120, 0.3, "none", False, "Smartwatches"),
        ("Unlocked Smartphone", 280, 0.5, "phone_gb", False, "Cell Phones"),
        ("Prepaid Flip Phone", 60, 0.4, "none", False, "Cell Phones"),
        ("Ring Light with Phone Holder", 28, 2, "light_in", False, "Photo Accessories"),
        ("Phone Lanyard", 9, 0.1, "none", True, "Accessories"),
        ("Charging Port Dust Plug", 1.0, 0.01, "none", True, "Accessories"),
        ("Smartwatch Band", 12, 0.1, "none", True, "Accessories"),
        ("Phone Camera Lens Kit", 25, 0.4, "none", False, "Photo Accessories"),
    ),
    "Toys_and_Games": (
        ("Building Blocks Set", 35, 2, "block_pcs", False, "Building Toys"),
        ("Jigsaw Puzzle", 18, 1.5, "puzzle_pcs", False, "Puzzles"),
        ("Strategy Board Game", 28, 2.5, "none", False, "Games"),
        ("Party Card Game", 14, 0.4, "none", False, "Games"),
        ("Plush Toy", 17, 0.6, "plush_in", False, "Stuffed Animals & Plush Toys"),
        ("Fashion Doll", 20, 0.8, "none", True, "Dolls & Accessories"),
        ("Remote Control Car", 45, 2.5, "rc_scale", False, "Remote & App Controlled Vehicles"),
        ("Camera Drone for Kids", 60, 1, "none", False, "Remote & App Controlled Vehicles"),
        ("Action Figure", 18, 0.4, "figure_in", True, "Action Figures"),
        ("Water Blaster", 15, 1, "none", True, "Sports & Outdoor Play"),
        ("Arts and Crafts Kit", 22, 2, "pieces", False, "Arts & Crafts"),
        ("STEM Robot Kit", 55, 2, "none", False, "Learning & Education"),
        ("Play Kitchen Set", 85, 25, "none", False, "Pretend Play"),
        ("Electric Ride-On Car", 260, 55, "ride_v", False, "Ride-On Toys"),
        ("Outdoor Trampoline", 240, 90, "trampoline_ft", False, "Sports & Outdoor Play"),
        ("Bubble Machine", 18, 1, "none", False, "Sports & Outdoor Play"),
        ("Model Train Set", 80, 5, "none", False, "Hobbies"),
        ("Wooden Dollhouse", 120, 20, "none", False, "Dolls & Accessories"),
        ("Playing Cards", 8, 0.3, "none", True, "Games"),
        ("Sticker Sheet", 2.2, 0.05, "none", True, "Arts & Crafts"),
    ),
    "Appliances": (
        ("Refrigerator Water Filter", 28, 0.8, "none", True, "Parts & Accessories"),
        ("Compact Refrigerator", 220, 50, "mini_cuft", False, "Refrigerators"),
        ("French Door Refrigerator", 1500, 250, "fridge_cuft", False, "Refrigerators"),
        ("Chest Freezer", 300, 70, "freezer_cuft", False, "Freezers"),
        ("Countertop Ice Maker", 120, 25, "ice_lb", False, "Ice Makers"),
        ("Dishwasher Rack Replacement", 22, 0.5, "none", True, "Parts & Accessories"),
        ("Washer Drain Pump", 35, 2, "none", False, "Parts & Accessories"),
        ("Dryer Vent Hose", 18, 2, "cable_ft", False, "Parts & Accessories"),
        ("Under Cabinet Range Hood", 250, 25, "hood_in", False, "Range Hoods"),
        ("Electric Cooktop", 280, 20, "burners", False, "Ranges, Ovens & Cooktops"),
        ("Countertop Microwave", 140, 30, "microwave_w", False, "Microwave Ovens"),
        ("Window Air Conditioner", 330, 60, "btu", False, "Air Conditioners"),
        ("Dehumidifier", 200, 40, "pints", False, "Dehumidifiers"),
        ("Portable Washing Machine", 230, 50, "washer_lb", False, "Laundry Appliances"),
        ("Stove Drip Pans", 14, 2, "none", True, "Parts & Accessories"),
        ("Wine Cooler", 280, 45, "bottles", False, "Wine Cellars"),
        ("Ice Maker Assembly", 60, 2, "none", False, "Parts & Accessories"),
        ("Replacement Control Knob", 4, 0.05, "none", True, "Parts & Accessories"),
    ),
    "Musical_Instruments": (
        ("Acoustic Guitar Strings", 9, 0.1, "gauge", True, "Instrument Accessories"),
        ("Guitar Picks", 7, 0.05, "picks", True, "Instrument Accessories"),
        ("Acoustic Guitar", 190, 10, "guitar_size", False, "Guitars"),
        ("Electric Guitar", 320, 9, "none", False, "Guitars"),
        ("Guitar Amplifier", 150, 18, "amp_w", False, "Amplifiers & Effects"),
        ("Clip-On Tuner", 12, 0.1, "none", True, "Instrument Accessories"),
        ("Guitar Strap", 14, 0.4, "none", False, "Instrument Accessories"),
        ("Guitar Capo", 10, 0.1, "none", False, "Instrument Accessories"),
        ("Digital Piano Keyboard", 250, 25, "keys", False, "Keyboards & MIDI"),
        ("MIDI Controller", 110, 4, "keys", False, "Keyboards & MIDI"),
        ("Condenser Microphone", 90, 1.5, "none", False, "Studio Recording Equipment"),
        ("Microphone Stand", 28, 6, "none", True, "Live Sound & Stage"),
        ("XLR Cable", 14, 0.6, "cable_ft", True, "Live Sound & Stage"),
        ("USB Audio Interface", 150, 2, "inputs", False, "Studio Recording Equipment"),
        ("Studio Headphones", 90, 0.7, "none", False, "Studio Recording Equipment"),
        ("Ukulele", 55, 2, "ukulele", False, "Ukuleles, Mandolins & Banjos"),
        ("Drum Sticks", 12, 0.3, "none", True, "Drums & Percussion"),
        ("Electronic Drum Set", 420, 40, "none", False, "Drums & Percussion"),
        ("Instrument Cable", 15, 0.5, "cable_ft", True, "Live Sound & Stage"),
        ("Sustain Pedal", 20, 1, "none", False, "Keyboards & MIDI"),
        ("Guitar Bridge Pins", 2.5, 0.02, "none", True, "Instrument Accessories"),
    ),
}
CATEGORIES = tuple(_PRODUCT_TYPES)

# Per category: main_category display string, occasional alternatives, usage phrases.
_CATEGORY_TEXT: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "Automotive": (
        "Automotive",
        ("Tools & Home Improvement", "Amazon Home"),
        ("for Cars, Trucks & SUVs", "for Most Vehicles", "Universal Fit", "OEM Replacement"),
    ),
    "Electronics": (
        "All Electronics",
        ("Computers", "Home Audio & Theater", "Camera & Photo"),
        ("for Home and Office", "for PC, Laptop and TV", "for Gaming", "for Travel"),
    ),
    "Office_Products": (
        "Office Products",
        ("Amazon Home", "Arts, Crafts & Sewing"),
        (
            "for Home, School and Office",
            "for Teachers and Students",
            "for Business Use",
            "for Desk Organization",
        ),
    ),
    "Tools_and_Home_Improvement": (
        "Tools & Home Improvement",
        ("Amazon Home", "Industrial & Scientific"),
        (
            "for DIY and Professional Use",
            "for Home Repair",
            "for Contractors",
            "for Garage and Workshop",
        ),
    ),
    "Cell_Phones_and_Accessories": (
        "Cell Phones & Accessories",
        ("All Electronics",),
        (
            "for Smartphones",
            "Compatible with Most Phones",
            "for Android and iOS Devices",
            "for Travel",
        ),
    ),
    "Toys_and_Games": (
        "Toys & Games",
        ("Amazon Home", "Sports & Outdoors"),
        (
            "for Kids Ages 3+",
            "for Boys and Girls",
            "for Family Game Night",
            "Birthday Gift for Kids",
        ),
    ),
    "Appliances": (
        "Appliances",
        ("Tools & Home Improvement", "Amazon Home"),
        ("for Home Kitchen", "Energy Saving", "for Apartment and Dorm", "Replacement Part"),
    ),
    "Musical_Instruments": (
        "Musical Instruments",
        ("All Electronics",),
        ("for Beginners", "for Stage and Studio", "for Adults and Kids", "for Home Recording"),
    ),
}

# Invented brands per category, by tier: budget, mid-range, premium.
_BRANDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Automotive": (
        ("Roadvex", "AutoKeen", "Carlyno", "Generic"),
        ("Motorvia", "Torqline", "Drivewell", "Pitcrest", "Axlebrook"),
        ("Brennhart", "Veltrano", "Ironsmith Motorworks"),
    ),
    "Electronics": (
        ("Voltix", "Zuneko", "Techby", "Generic"),
        ("Lumora", "Sonarix", "Pixelane", "Nexwave", "Audiova"),
        ("Halcyra", "Aurelix", "Strathmere Audio"),
    ),
    "Office_Products": (
        ("Deskly", "Papyro", "Inkwise", "Generic"),
        ("Officium", "Scriptora", "Ledgerly", "Clerkwell"),
        ("Montclair Studio", "Vellichor", "Archwood"),
    ),
    "Tools_and_Home_Improvement": (
        ("Handimax", "Boltra", "Fixwell", "Generic"),
        ("Craftlane", "Ironvale", "Torquemax", "Buildrite", "Workhaven"),
        ("Kesslar Pro", "Obsidian Tool Works", "Falkenrath"),
    ),
    "Cell_Phones_and_Accessories": (
        ("Phonix", "Cellzy", "Chargo", "Generic"),
        ("Vyrotek", "Connecta", "Aeroshell", "Gripwave"),
        ("Zephyra", "Lumicell", "Orbitron Labs"),
    ),
    "Toys_and_Games": (
        ("Funzoo", "Playbit", "Kidora", "Generic"),
        ("Wonderkin", "Tumblebee", "Brickworth", "Giggleton"),
        ("Marvelle Toys", "Heirloom Hearth", "Kinderhaus"),
    ),
    "Appliances": (
        ("Coolbay", "Frostell", "Homiva", "Generic"),
        ("Kelvaire", "Chillworth", "Aquavance", "Thermalux"),
        ("Nordhaven", "Vantor Elite", "Belmonte Appliance"),
    ),
    "Musical_Instruments": (
        ("Tunely", "Strumz", "Melodix", "Generic"),
        ("Harmonis", "Cadenza", "Resonar", "Fretcraft"),
        ("Valkyrie Guitars", "Ostinato", "Ravenhill Audio"),
    ),
}
_TIER_PROBABILITY = (0.38, 0.44, 0.18)
_TIER_EFFECT = (-0.45, 0.0, 0.55)
_SPEC_TIER_SLOPE = 0.3  # premium brands charge more per unit of spec: an interaction
_BRAND_OFFSET_SD = 0.12

_MATERIALS: dict[str, tuple[tuple[str, float], ...]] = {
    "Automotive": (
        ("Rubber", -0.1),
        ("Plastic", -0.2),
        ("Steel", 0.05),
        ("Aluminum", 0.12),
        ("Stainless Steel", 0.2),
        ("Ceramic", 0.25),
        ("Carbon Fiber", 0.45),
    ),
    "Electronics": (
        ("Plastic", -0.12),
        ("ABS", -0.08),
        ("Braided Nylon", 0.08),
        ("Aluminum", 0.2),
        ("Silicone", -0.05),
        ("Tempered Glass", 0.15),
    ),
    "Office_Products": (
        ("Plastic", -0.15),
        ("Paper", -0.1),
        ("Cardboard", -0.2),
        ("Metal", 0.1),
        ("Bamboo", 0.15),
        ("Genuine Leather", 0.45),
    ),
    "Tools_and_Home_Improvement": (
        ("Plastic", -0.2),
        ("Carbon Steel", 0.0),
        ("Chrome Vanadium Steel", 0.15),
        ("Brass", 0.25),
        ("Stainless Steel", 0.2),
        ("Zinc Alloy", -0.05),
    ),
    "Cell_Phones_and_Accessories": (
        ("TPU", -0.15),
        ("Silicone", -0.1),
        ("Polycarbonate", 0.0),
        ("Tempered Glass", 0.05),
        ("Aluminum", 0.2),
        ("Genuine Leather", 0.4),
    ),
    "Toys_and_Games": (
        ("Plastic", -0.1),
        ("Polyester", -0.05),
        ("Cardboard", -0.15),
        ("Wood", 0.2),
        ("ABS", 0.0),
        ("Organic Cotton", 0.3),
    ),
    "Appliances": (
        ("Plastic", -0.2),
        ("Stainless Steel", 0.25),
        ("Aluminum", 0.05),
        ("Enamel", 0.0),
        ("Glass", 0.1),
    ),
    "Musical_Instruments": (
        ("Plastic", -0.2),
        ("Nickel", -0.05),
        ("Nylon", -0.1),
        ("Mahogany", 0.3),
        ("Spruce", 0.25),
        ("Rosewood", 0.4),
        ("Metal", 0.05),
    ),
}
# Title variants: (word, log-price effect, probability, written after the type name).
# Kits weigh more in tools, where they include batteries and a charger.
_VARIANTS = (
    ("", 0.0, 0.42, False),
    ("Pro", 0.25, 0.08, True),
    ("Plus", 0.12, 0.06, True),
    ("Lite", -0.2, 0.05, True),
    ("Max", 0.3, 0.04, True),
    ("Mini", -0.25, 0.05, False),
    ("Kit", 0.4, 0.07, True),
    ("Deluxe Set", 0.45, 0.03, True),
    ("2nd Gen", 0.1, 0.05, False),
    ("Heavy Duty", 0.2, 0.05, False),
    ("Premium", 0.15, 0.05, False),
    ("Compact", -0.1, 0.05, False),
)
_KIT_EXTRA_IN_TOOLS = 0.35
_COLORS = (
    "Black",
    "White",
    "Silver",
    "Gray",
    "Blue",
    "Red",
    "Green",
    "Pink",
    "Clear",
    "Navy",
    "Beige",
    "Multicolor",
    "Matte Black",
    "Rose Gold",
)
_PACK_SIZES = (2, 3, 4, 5, 6, 8, 10, 12, 20, 24)
_PACK_PROBABILITY = (0.3, 0.1, 0.17, 0.05, 0.12, 0.06, 0.08, 0.06, 0.03, 0.03)
_PACK_SHARE = 0.5  # of packable products sold as multi-packs
_PACK_ELASTICITY = 0.72  # per-unit discount: 4 units cost about 2.7x one
_PACK_PHRASES = ("(Pack of {})", "{}-Pack", "{} Pack", "Set of {}", "{} Count")
_YEARS = np.arange(2006, 2024)
_YEAR_EFFECT = 0.02  # newer listings are a little dearer
_NOISE_DESCRIPTION_LINES = ("Product Description", "From the manufacturer", "About this item")
_RESELLERS = (
    "BrightCart Supply",
    "Nova Trading Co",
    "HomeHub Direct",
    "Everyday Goods Depot",
    "Bluefin Wholesale",
    "Maple Lane Outlet",
)
_COMPANY_SUFFIXES = ("Inc.", "LLC", "Co., Ltd", "Corporation", "Group")
_WARRANTIES = (
    ("30-day money-back guarantee", "90-day warranty"),
    ("1-year warranty", "18-month warranty"),
    ("2-year warranty", "3-year limited warranty", "5-year warranty"),
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# Marketing filler: subjects x predicates give the shared sentence pool.
_SUBJECTS = ("This item", "The design", "Each unit", "Our product")
_PREDICATES = (
    "is built to last through years of everyday use",
    "comes ready to use out of the box",
    "is checked for quality before it leaves our facility",
    "makes a thoughtful gift",
    "fits neatly into small spaces and tight storage areas",
    "is easy to wipe clean",
    "offers great value without cutting corners",
    "pairs a modern look with practical function",
    "was shaped by feedback from thousands of customers",
    "holds up in hot and cold weather",
    "is light enough to carry anywhere",
    "sets up in minutes with no special tools",
    "is backed by a friendly support team",
    "meets strict safety and quality standards",
    "delivers reliable performance day after day",
    "keeps its finish after repeated use",
)
_GENERIC_SENTENCES = (
    "Order with confidence.",
    "Satisfaction guaranteed or your money back.",
    "Colors may vary slightly due to screen settings.",
    "The package includes everything you need to get started.",
    "Questions? Message us and we will reply within one business day.",
)
_CATEGORY_SENTENCES: dict[str, tuple[str, ...]] = {
    "Automotive": (
        "Check your vehicle make, model and year before ordering.",
        "Engineered to meet or exceed original equipment specifications.",
        "Resists road salt, heat and vibration.",
        "Direct bolt-on installation in most vehicles.",
        "A smart upgrade for daily drivers and weekend projects alike.",
        "Keeps your car looking and running like new.",
        "Trusted by mechanics and DIY owners.",
    ),
    "Electronics": (
        "Enjoy crisp, clear signal with minimal interference.",
        "Works with most laptops, desktops, TVs and game consoles.",
        "An advanced chipset delivers fast, stable performance.",
        "Plug and play, no drivers required.",
        "Low power draw keeps energy bills down.",
        "Built-in protection guards against overheating and short circuits.",
        "A sleek finish blends into any entertainment setup.",
    ),
    "Office_Products": (
        "Keeps your desk tidy and your work organized.",
        "Writes smoothly with no smudging.",
        "Ideal for classrooms, home offices and busy workplaces.",
        "Acid-free materials help documents last longer.",
        "Bright colors make sorting and labeling simple.",
        "Quiet operation will not disturb coworkers.",
        "A refill-friendly design reduces waste.",
    ),
    "Tools_and_Home_Improvement": (
        "An ergonomic grip reduces hand fatigue during long jobs.",
        "Hardened construction stands up to jobsite abuse.",
        "Perfect for remodeling, repairs and weekend projects.",
        "Precision machined for accurate, repeatable results.",
        "A rust-resistant finish gives a long service life.",
        "A must-have addition to every toolbox.",
        "Compact size reaches into tight spaces.",
    ),
    "Cell_Phones_and_Accessories": (
        "Precise cutouts give full access to all ports and buttons.",
        "A smart chip protects your device from overcharging.",
        "A slim profile slips easily into pockets and bags.",
        "Raised edges help protect the screen and camera from drops.",
        "Charges your device quickly and safely.",
        "Stay connected on the go.",
        "Tested for thousands of bend and plug cycles.",
    ),
    "Toys_and_Games": (
        "Encourages creativity, imagination and problem solving.",
        "Made with non-toxic, child-safe materials.",
        "Hours of fun for the whole family.",
        "A great birthday or holiday gift for boys and girls.",
        "Helps develop fine motor skills and hand-eye coordination.",
        "Easy for little hands to grip.",
        "Adult supervision recommended for young children.",
    ),
    "Appliances": (
        "An energy efficient design helps lower utility bills.",
        "Quiet operation suits kitchens, bedrooms and offices.",
        "Replaces the original part with an exact fit.",
        "Simple controls make daily use easy.",
        "Adjustable settings let you choose the right mode.",
        "Fits standard cutouts and installs quickly.",
        "Please confirm your appliance model number before purchase.",
    ),
    "Musical_Instruments": (
        "Rich, warm tone with clear projection.",
        "Great for beginners and seasoned players.",
        "Stays in tune longer, even with heavy playing.",
        "A low-noise design for clean studio recordings.",
        "Comfortable to play for long sessions.",
        "A road-ready build for touring musicians.",
        "Perfect for practice, lessons and live performance.",
    ),
}
_FILLER_BULLETS = (
    "EASY TO USE: Simple setup lets you get started in minutes, no experience needed.",
    "DURABLE CONSTRUCTION: Quality materials resist wear, cracking and fading.",
    "WHAT YOU GET: Everything in the box plus a user guide and friendly support.",
    "WORRY-FREE PURCHASE: Contact us anytime and we will make it right.",
    "COMPACT AND PORTABLE: Takes up little space and travels easily.",
    "GREAT GIFT: An ideal present for birthdays, holidays and special occasions.",
    "VERSATILE: Suitable for a wide range of everyday tasks.",
    "SAFE DESIGN: Rounded edges and certified components for peace of mind.",
)
_FIT_CHECK_LINE = "Make sure this fits by entering your model number."


@dataclass(frozen=True)
class _Catalog:
    """The tables above flattened into arrays indexed by type, brand, spec and category."""

    type_names: tuple[str, ...]
    type_departments: tuple[str, ...]
    type_category: np.ndarray
    type_log_base: np.ndarray
    type_log_weight: np.ndarray
    type_spec: np.ndarray
    type_packable: np.ndarray
    type_popularity: np.ndarray  # within-category share: cheap types sell more
    spec_keys: tuple[str, ...]
    spec_label_table: np.ndarray  # (spec, level) -> label, object array
    spec_n_levels: np.ndarray
    spec_effects: np.ndarray  # (spec, level), zero padded
    brand_names: tuple[str, ...]
    brand_prefixes: tuple[str, ...]
    brand_table: np.ndarray  # (category, tier, slot) -> brand id
    brand_counts: np.ndarray  # (category, tier)
    brand_offsets: np.ndarray
    material_table: np.ndarray  # (category, slot) -> name, object array
    material_effects: np.ndarray  # (category, slot), zero padded
    material_counts: np.ndarray
    category_displays: tuple[str, ...]
    use_table: np.ndarray  # (category, slot) -> usage phrase, object array
    sentence_pools: tuple[tuple[str, ...], ...]
    bullet_pools: tuple[tuple[str, ...], ...]


@cache
def _catalog() -> _Catalog:
    spec_ids = {name: i for i, name in enumerate(_SPECS)}
    specs = list(_SPECS.values())
    max_levels = max(len(spec.labels) for spec in specs)
    spec_effects = np.zeros((len(specs), max_levels))
    spec_label_table = np.full((len(specs), max_levels), "", dtype=object)
    for i, spec in enumerate(specs):
        spec_effects[i, : len(spec.effects)] = spec.effects
        spec_label_table[i, : len(spec.labels)] = spec.labels

    rows = [(c, *row) for c, types in enumerate(_PRODUCT_TYPES.values()) for row in types]
    type_category = np.array([row[0] for row in rows])
    type_base = np.array([row[2] for row in rows], dtype=float)
    popularity = type_base**-0.45
    for c in range(len(CATEGORIES)):
        popularity[type_category == c] /= popularity[type_category == c].sum()

    # Brand offsets and model-number prefixes are fixed properties of a brand, so they come
    # from a private constant seed, not from the caller's seed.
    fixed = np.random.default_rng(20231)
    brand_names: list[str] = []
    max_slots = max(len(tier) for tiers in _BRANDS.values() for tier in tiers)
    brand_table = np.zeros((len(CATEGORIES), 3, max_slots), dtype=np.int64)
    brand_counts = np.zeros((len(CATEGORIES), 3), dtype=np.int64)
    for c, category in enumerate(CATEGORIES):
        for tier, names in enumerate(_BRANDS[category]):
            brand_counts[c, tier] = len(names)
            for slot, name in enumerate(names):
                brand_table[c, tier, slot] = len(brand_names)
                brand_names.append(name)
    letters = np.array(list("ABCDEFGHJKLMNPRSTVWXZ"))
    prefixes = tuple("".join(fixed.choice(letters, 2)) for _ in brand_names)

    max_materials = max(len(m) for m in _MATERIALS.values())
    material_effects = np.zeros((len(CATEGORIES), max_materials))
    material_table = np.full((len(CATEGORIES), max_materials), "", dtype=object)
    for c, category in enumerate(CATEGORIES):
        material_effects[c, : len(_MATERIALS[category])] = [e for _, e in _MATERIALS[category]]
        material_table[c, : len(_MATERIALS[category])] = [m for m, _ in _MATERIALS[category]]
    use_table = np.array([_CATEGORY_TEXT[c][2] for c in CATEGORIES], dtype=object)

    generic = tuple(f"{s} {p}." for s in _SUBJECTS for p in _PREDICATES) + _GENERIC_SENTENCES
    # Details are written as JSON text directly, which is exact only if nothing needs escaping.
    detail_words = [
        *brand_names,
        *(row[6] for row in rows),
        *_COLORS,
        *_COMPANY_SUFFIXES,
        *(_CATEGORY_TEXT[c][0] for c in CATEGORIES),
        *_MONTHS,
        *(m for materials in _MATERIALS.values() for m, _ in materials),
        *(w for spec in specs for w in (spec.detail_key, *spec.labels)),
    ]
    unsafe = [word for word in detail_words if json.dumps(word) != f'"{word}"']
    if unsafe:
        raise ValueError(f"catalog words would need JSON escaping: {unsafe}")
    return _Catalog(
        type_names=tuple(row[1] for row in rows),
        type_departments=tuple(row[6] for row in rows),
        type_category=type_category,
        type_log_base=np.log(type_base),
        type_log_weight=np.log([row[3] for row in rows]),
        type_spec=np.array([spec_ids[row[4]] for row in rows]),
        type_packable=np.array([row[5] for row in rows], dtype=bool),
        type_popularity=popularity,
        spec_keys=tuple(spec.detail_key for spec in specs),
        spec_label_table=spec_label_table,
        spec_n_levels=np.array([len(spec.labels) for spec in specs]),
        spec_effects=spec_effects,
        brand_names=tuple(brand_names),
        brand_prefixes=prefixes,
        brand_table=brand_table,
        brand_counts=brand_counts,
        brand_offsets=fixed.normal(0.0, _BRAND_OFFSET_SD, len(brand_names)),
        material_table=material_table,
        material_effects=material_effects,
        material_counts=np.array([len(_MATERIALS[c]) for c in CATEGORIES]),
        category_displays=tuple(_CATEGORY_TEXT[c][0] for c in CATEGORIES),
        use_table=use_table,
        sentence_pools=tuple(generic + _CATEGORY_SENTENCES[c] for c in CATEGORIES),
        bullet_pools=tuple(_FILLER_BULLETS + _CATEGORY_SENTENCES[c] for c in CATEGORIES),
    )


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def iter_raw_batches(
    n_records: int,
    seed: int,
    batch_size: int,
    *,
    category_weights: Mapping[str, float],
    price_noise: float,
    min_price: float,
    max_price: float,
    missing_price_share: float,
    messy_price_share: float,
    dollar_format_share: float,
    junk_share: float,
    duplicate_share: float,
) -> Iterator[pd.DataFrame]:
    """Yield raw records in batches of ``batch_size`` (the last may be smaller).

    Each batch has its own generator spawned from ``seed``, so output is deterministic for
    given arguments and batches never depend on each other (millions of rows can stream).
    """
    if n_records < 0 or batch_size < 1:
        raise ValueError(f"need n_records >= 0 and batch_size >= 1, got {n_records}, {batch_size}")
    shares = {
        "missing_price_share": missing_price_share,
        "messy_price_share": messy_price_share,
        "dollar_format_share": dollar_format_share,
        "junk_share": junk_share,
        "duplicate_share": duplicate_share,
    }
    for name, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {share}")
    if price_noise < 0 or not 0 < min_price < max_price:
        raise ValueError("need price_noise >= 0 and 0 < min_price < max_price")
    unknown = set(category_weights) - set(CATEGORIES)
    if unknown or any(category_weights.get(c, 0) < 0 for c in CATEGORIES):
        raise ValueError(f"category_weights: keys must be among {CATEGORIES}, weights >= 0")
    weights = np.array([float(category_weights.get(c, 0.0)) for c in CATEGORIES])
    if weights.sum() <= 0:
        raise ValueError("category_weights must have a positive total")

    settings = _Settings(
        weights / weights.sum(),
        price_noise,
        min_price,
        max_price,
        missing_price_share,
        messy_price_share,
        dollar_format_share,
        junk_share,
        duplicate_share,
    )
    n_batches = -(-n_records // batch_size)
    for index, seed_sequence in enumerate(np.random.SeedSequence(seed).spawn(n_batches)):
        size = min(batch_size, n_records - index * batch_size)
        yield _generate_batch(np.random.default_rng(seed_sequence), size, settings)


def generate_raw(n_records: int, seed: int, batch_size: int, **generator: Any) -> pd.DataFrame:
    """All batches of :func:`iter_raw_batches` (the same keyword arguments) in one frame,
    indexed 0..n_records-1."""
    batches = list(iter_raw_batches(n_records, seed, batch_size, **generator))
    if not batches:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in RAW_COLUMNS})
    return pd.concat(batches, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# One batch
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """The generator keyword arguments, validated, with category weights normalised."""

    category_probability: np.ndarray
    price_noise: float
    min_price: float
    max_price: float
    missing_price_share: float
    messy_price_share: float
    dollar_format_share: float
    junk_share: float
    duplicate_share: float


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a batch.

    A batch allocates millions of small lists and strings and no reference cycles; the
    collector would rescan them over and over, which costs about 40% of the run time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _generate_batch(rng: np.random.Generator, n: int, settings: _Settings) -> pd.DataFrame:
    with _gc_paused():
        return _build_batch(rng, n, settings)


def _build_batch(rng: np.random.Generator, n: int, settings: _Settings) -> pd.DataFrame:
    cat = _catalog()
    draws = _draw_attributes(rng, n, settings, cat)
    columns = _assemble_text(cat, draws)
    columns["details"] = _details_column(cat, draws, columns.pop("model_number"))
    columns["average_rating"] = draws["average_rating"].tolist()
    columns["rating_number"] = draws["rating_number"].tolist()
    columns["parent_asin"] = _asins(rng, n)
    columns["images"] = [[] for _ in range(n)]
    columns["videos"] = [[] for _ in range(n)]
    columns["bought_together"] = [None] * n
    _duplicate_rows(rng, columns, settings.duplicate_share)
    return pd.DataFrame({column: columns[column] for column in RAW_COLUMNS})


def _draw_attributes(
    rng: np.random.Generator, n: int, settings: _Settings, cat: _Catalog
) -> dict[str, np.ndarray]:
    """Every random choice of the batch, vectorised: product, price and detail numbers."""
    type_probability = settings.category_probability[cat.type_category] * cat.type_popularity
    type_ids = rng.choice(len(cat.type_names), n, p=type_probability)
    category = cat.type_category[type_ids]
    tier = rng.choice(3, n, p=_TIER_PROBABILITY)
    brand_slot = (rng.random(n) * cat.brand_counts[category, tier]).astype(np.int64)
    brand = cat.brand_table[category, tier, brand_slot]
    spec = cat.type_spec[type_ids]
    level = (rng.random(n) * cat.spec_n_levels[spec]).astype(np.int64)
    spec_effect = cat.spec_effects[spec, level]
    is_pack = cat.type_packable[type_ids] & (rng.random(n) < _PACK_SHARE)
    pack = np.where(is_pack, rng.choice(_PACK_SIZES, n, p=_PACK_PROBABILITY), 1)
    material = (rng.random(n) * cat.material_counts[category]).astype(np.int64)
    variant = rng.choice(len(_VARIANTS), n, p=[v[2] for v in _VARIANTS])
    is_tool_kit = np.array([v[0] == "Kit" for v in _VARIANTS])[variant] & (
        category == CATEGORIES.index("Tools_and_Home_Improvement")
    )
    variant_effect = (
        np.array([v[1] for v in _VARIANTS])[variant] + _KIT_EXTRA_IN_TOOLS * is_tool_kit
    )
    year_weights = np.linspace(1.0, 4.0, len(_YEARS))
    year = rng.choice(_YEARS, n, p=year_weights / year_weights.sum())

    log_price = (
        cat.type_log_base[type_ids]
        + np.array(_TIER_EFFECT)[tier]
        + cat.brand_offsets[brand]
        + spec_effect * (1.0 + _SPEC_TIER_SLOPE * (tier - 1))
        + _PACK_ELASTICITY * np.log(pack)
        + cat.material_effects[category, material]
        + variant_effect
        + _YEAR_EFFECT * (year - 2016)
        + rng.normal(0.0, settings.price_noise, n)
    )
    price = _retail_rounding(
        np.clip(np.exp(log_price), settings.min_price, settings.max_price), rng
    )

    # Numbers in the details: size follows spec and pack, popularity follows price and tier.
    weight_lb = np.exp(
        cat.type_log_weight[type_ids]
        + 0.8 * spec_effect
        + 0.9 * np.log(pack)
        + rng.normal(0.0, 0.3, n)
    )
    volume_in3 = weight_lb * 27.7 / rng.uniform(0.08, 0.6, n)
    aspect_long, aspect_mid = rng.uniform(1.0, 3.0, n), rng.uniform(1.0, 2.0, n)
    depth = np.cbrt(volume_in3 / (aspect_long * aspect_mid**2))
    rating_number = 1 + np.floor(
        np.exp(rng.normal(2.8 + 0.35 * tier - 0.25 * (np.log(price) - np.log(30.0)), 1.6, n))
    ).astype(np.int64)
    sales_rank = np.maximum(
        1, np.exp(rng.normal(12.0 - 0.7 * np.log1p(rating_number) + 0.2 * np.log(price), 1.0, n))
    ).astype(np.int64)

    # Text choices. Small ints (percent coin flips, pool indices) keep ``tolist`` cheap:
    # CPython caches ints below 257.
    sentence_pool_size = np.array([len(p) for p in cat.sentence_pools])[category]
    bullet_pool_size = np.array([len(p) for p in cat.bullet_pools])[category]
    junk = rng.random(n) < settings.junk_share
    return {
        "type_ids": type_ids,
        "category": category,
        "tier": tier,
        "brand": brand,
        "spec": spec,
        "level": level,
        "pack": pack,
        "material": material,
        "variant": variant,
        "year": year,
        "price": price,
        "weight_lb": weight_lb,
        "depth": depth,
        "width": depth * aspect_mid,
        "length": depth * aspect_mid * aspect_long,
        "sales_rank": sales_rank,
        "sub_rank": np.maximum(1, sales_rank // rng.integers(15, 400, n)),
        "rating_number": rating_number,
        "average_rating": np.clip(np.round(rng.normal(4.15 + 0.12 * tier, 0.45, n), 1), 1, 5),
        "n_paragraphs": rng.choice(4, n, p=(0.3, 0.35, 0.25, 0.1)),
        "paragraph_sentences": rng.integers(2, 5, (n, 3)),
        "sentence_ids": (rng.random((n, 12)) * sentence_pool_size[:, None]).astype(np.int16),
        "n_features": rng.integers(2, 7, n),
        "bullet_ids": (rng.random((n, 8)) * bullet_pool_size[:, None]).astype(np.int16),
        "flags": rng.integers(0, 100, (n, 17), dtype=np.int16),  # percent coin flips
        "detail_flags": rng.integers(0, 100, (n, 16), dtype=np.int16),
        "title_template": rng.integers(0, 5, n),
        "color": rng.integers(0, len(_COLORS), n),
        "use": rng.integers(0, 4, n),
        "warranty_level": np.clip(tier + (rng.random(n) < 0.3) * rng.integers(-1, 2, n), 0, 2),
        "model_digits": rng.integers(0, 1000, n),
        "model_suffix": rng.choice(np.array(list("ABCDEHKLMRSTX"), dtype=object), n),
        "junk": junk,
        "empty_title": junk & (rng.random(n) < 0.5),
        "price_kind": _price_kinds(rng, n, settings),
    }


def _retail_rounding(price: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Snap to shop-like endings (.99, .95, .49, .00 ...); cents stay as drawn below $1."""
    endings = rng.choice(
        [0.99, 0.95, 0.49, 0.0, 0.97, 0.89, 0.5, 0.79],
        len(price),
        p=[0.45, 0.12, 0.1, 0.1, 0.08, 0.06, 0.05, 0.04],
    )
    dollars = np.floor(price)
    return np.where(dollars >= 1, dollars + endings, np.maximum(np.round(price, 2), 0.01))


# Price string kinds: plain "12.99", "$1,299.99", "None", and messy ones.
_PLAIN, _DOLLAR, _NONE, _EMPTY, _RANGE, _UNAVAILABLE = range(6)


def _price_kinds(rng: np.random.Generator, n: int, settings: _Settings) -> np.ndarray:
    kind = np.where(rng.random(n) < settings.dollar_format_share, _DOLLAR, _PLAIN)
    messy = rng.random(n) < settings.messy_price_share
    kind = np.where(messy, rng.choice([_EMPTY, _RANGE, _UNAVAILABLE], n), kind)
    return np.where(rng.random(n) < settings.missing_price_share, _NONE, kind)


def _price_string(kind: int, price: float, flag: int) -> str:
    if kind == _PLAIN:
        return f"{price:.2f}"
    if kind == _DOLLAR:
        return f"${price:,.2f}"
    if kind == _NONE:
        return "None"
    if kind == _RANGE:
        return f"${price:,.2f} - ${price * (1.2 + flag / 100):,.2f}"
    if kind == _UNAVAILABLE:
        return "Currently unavailable"
    return ""


def _asins(rng: np.random.Generator, n: int) -> list[str]:
    alphabet = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
    codes = np.ascontiguousarray(alphabet[rng.integers(0, 36, (n, 8))])
    return ["B0" + code.decode() for code in codes.view("S8").ravel()]


def _duplicate_rows(rng: np.random.Generator, columns: dict[str, list], share: float) -> None:
    """Overwrite a share of rows with copies of earlier rows (re-listed products)."""
    n = len(columns["title"])
    duplicates = np.flatnonzero(rng.random(n) < share)
    duplicates = duplicates[duplicates > 0]
    sources = (rng.random(len(duplicates)) * duplicates).astype(np.int64)
    for row, source in zip(duplicates.tolist(), sources.tolist(), strict=True):
        for values in columns.values():
            value = values[source]
            values[row] = list(value) if isinstance(value, list) else value


def _lookup(table: tuple[str, ...], ids: np.ndarray) -> list[str]:
    """Vectorised table lookup straight to a list of strings."""
    return np.array(table, dtype=object)[ids].tolist()


def _assemble_text(cat: _Catalog, d: dict[str, np.ndarray]) -> dict[str, list]:
    """Per-row Python work, kept to string assembly: title, description, features, price."""
    category = d["category"]
    names = _lookup(cat.type_names, d["type_ids"])
    brands = _lookup(cat.brand_names, d["brand"])
    spec_keys = _lookup(cat.spec_keys, d["spec"])
    spec_labels = cat.spec_label_table[d["spec"], d["level"]].tolist()
    materials = cat.material_table[category, d["material"]].tolist()
    variants = _lookup(tuple(v[0] for v in _VARIANTS), d["variant"])
    variant_after = np.array([v[3] for v in _VARIANTS])[d["variant"]].tolist()
    colors = _lookup(_COLORS, d["color"])
    uses = cat.use_table[category, d["use"]].tolist()
    prefixes = _lookup(cat.brand_prefixes, d["brand"])
    rows = zip(
        category.tolist(),
        names,
        brands,
        prefixes,
        spec_keys,
        spec_labels,
        materials,
        variants,
        variant_after,
        colors,
        uses,
        d["level"].tolist(),
        d["pack"].tolist(),
        d["model_digits"].tolist(),
        d["model_suffix"].tolist(),
        d["title_template"].tolist(),
        d["n_features"].tolist(),
        d["bullet_ids"].tolist(),
        d["n_paragraphs"].tolist(),
        d["paragraph_sentences"].tolist(),
        d["sentence_ids"].tolist(),
        d["warranty_level"].tolist(),
        d["flags"].tolist(),
        d["junk"].tolist(),
        d["empty_title"].tolist(),
        d["price_kind"].tolist(),
        d["price"].tolist(),
        _lookup(cat.type_departments, d["type_ids"]),
        strict=True,
    )
    out: dict[str, list] = {
        c: []
        for c in (
            "category",
            "main_category",
            "title",
            "description",
            "features",
            "price",
            "store",
            "categories",
            "model_number",
        )
    }
    for (
        c,
        name,
        brand,
        prefix,
        spec_key,
        spec_label,
        material,
        variant,
        variant_after,
        color,
        use,
        level,
        pack,
        model_digits,
        model_suffix,
        template,
        n_features,
        bullet_ids,
        n_paragraphs,
        paragraph_sentences,
        sentence_ids,
        warranty_level,
        flag,
        junk,
        empty_title,
        price_kind,
        price,
        department,
    ) in rows:
        display, alternatives, _ = _CATEGORY_TEXT[CATEGORIES[c]]
        # Part-number-like model: the first digit follows the spec level, as real ones often do.
        model = f"{prefix}-{level + 1}{model_digits:03d}{model_suffix}"
        out["model_number"].append(model)

        # Title: brand + type + key spec + variant, in one of a few listing styles.
        core = (
            name if not variant else f"{name} {variant}" if variant_after else f"{variant} {name}"
        )
        if template == 0:
            parts = (
                f"{brand} {spec_label} {core}" if spec_label else f"{brand} {core}",
                material,
                color,
            )
        elif template == 1:
            parts = (f"{brand} {core}", spec_label, use)
        elif template == 2:  # no brand in the title: it is only in the details
            parts = (f"{core} {use}", spec_label, color)
        elif template == 3:
            parts = (f"{brand} {model} {core}", spec_label, material)
        else:
            parts = (f"{brand} {core} {spec_label}" if spec_label else f"{brand} {core}",)
        title = ", ".join(p for p in parts if p)
        if pack > 1:
            pack_text = _PACK_PHRASES[flag[0] // 20].format(pack)
            if flag[1] >= 70:
                title = f"{pack_text} {title}"
            else:
                title = f"{title} {pack_text}" if pack_text[0] == "(" else f"{title}, {pack_text}"

        # Feature bullets: the informative ones first, topped up with marketing filler.
        bullets = []
        if spec_label and flag[2] < 80:
            bullets.append(
                f"{spec_key.upper()}: {spec_label} {name.lower()} to handle more of your "
                "everyday needs."
                if flag[3] < 50
                else f"The {spec_label} {spec_key.lower()} suits most setups, {use.lower()}."
            )
        if flag[4] < 55:
            bullets.append(
                f"{material.upper()} BUILD: Made from high-grade {material.lower()} "
                "for strength and longevity."
            )
        if pack > 1 and flag[5] < 70:
            bullets.append(
                f"VALUE PACK: Includes {pack} {name.lower()} units so you always have a spare."
            )
        if variant == "Kit":
            bullets.append(
                "COMPLETE KIT: Includes accessories, a carrying case and everything "
                "needed to start."
            )
        if flag[6] < 50:
            warranty = _WARRANTIES[warranty_level]
            bullets.append(f"WARRANTY: {warranty[flag[7] % len(warranty)]} from {brand}.")
        pool = cat.bullet_pools[c]
        for bullet_id in bullet_ids:
            if len(bullets) >= n_features:
                break
            if pool[bullet_id] not in bullets:
                bullets.append(pool[bullet_id])
        del bullets[n_features:]
        if flag[8] < 6:
            bullets.append(_FIT_CHECK_LINE)

        # Description: 0-3 paragraphs of filler, the first often opening with the specs.
        pool = cat.sentence_pools[c]
        paragraphs = []
        start = 0
        for length in paragraph_sentences[:n_paragraphs]:
            ids = dict.fromkeys(sentence_ids[start : start + length])  # no repeated sentence
            start += length
            paragraph = " ".join(pool[s] for s in ids)
            if not paragraphs and flag[9] < 60:
                spec_words = f"{spec_label} {spec_key.lower()}, " if spec_label else ""
                paragraph = (
                    f"Meet the {brand} {core}: {spec_words}{material.lower()} "
                    f"construction and a {color.lower()} finish. {paragraph}"
                )
            paragraphs.append(paragraph)
        if paragraphs and flag[10] < 8:
            paragraphs.insert(0, _NOISE_DESCRIPTION_LINES[flag[11] % 3])

        if junk:  # scraped listings with almost nothing in them
            paragraphs, bullets = [], []
            title = "" if empty_title else name
        out["category"].append(CATEGORIES[c])
        out["main_category"].append(
            alternatives[flag[12] % len(alternatives)] if flag[13] < 12 else display
        )
        out["title"].append(title)
        out["description"].append(paragraphs)
        out["features"].append(bullets)
        out["price"].append(_price_string(price_kind, price, flag[14]))
        store = flag[15]
        out["store"].append(
            brand
            if store < 72
            else f"{brand} Direct"
            if store < 84
            else _RESELLERS[store % len(_RESELLERS)]
            if store < 95
            else ""
        )
        out["categories"].append([] if flag[16] < 20 else [display, department, name])
    return out


def _details_column(cat: _Catalog, d: dict[str, np.ndarray], model_numbers: list[str]) -> list[str]:
    """The ``details`` JSON strings; which keys appear varies from record to record.

    Written as JSON text directly (twice as fast as ``json.dumps``): the catalog is checked to
    hold no character that JSON would escape, so the result is exactly what ``json.dumps``
    gives.
    """
    category = d["category"]
    rows = zip(
        _lookup(cat.brand_names, d["brand"]),
        _lookup(cat.type_departments, d["type_ids"]),
        _lookup(cat.category_displays, category),
        _lookup(cat.spec_keys, d["spec"]),
        cat.spec_label_table[d["spec"], d["level"]].tolist(),
        cat.material_table[category, d["material"]].tolist(),
        _lookup(_COLORS, d["color"]),
        model_numbers,
        d["pack"].tolist(),
        d["year"].tolist(),
        d["weight_lb"].tolist(),
        d["length"].tolist(),
        d["width"].tolist(),
        d["depth"].tolist(),
        d["sales_rank"].tolist(),
        d["sub_rank"].tolist(),
        d["detail_flags"].tolist(),
        d["junk"].tolist(),
        strict=True,
    )
    column = []
    for (
        brand,
        department,
        display,
        spec_key,
        spec_label,
        material,
        color,
        model,
        pack,
        year,
        weight,
        length,
        width,
        depth,
        rank,
        sub_rank,
        keep,
        junk,
    ) in rows:
        if junk:
            column.append(f'{{"Brand": "{brand}"}}')
            continue
        parts = []
        if keep[0] < 70:
            key = "Product Dimensions" if keep[1] < 70 else "Package Dimensions"
            parts.append(f'"{key}": "{length:.1f} x {width:.1f} x {depth:.1f} inches"')
        if keep[2] < 75:
            weight_text = (
                f"{weight * 16:.1f} ounces"
                if weight < 1
                else f"{weight:.2f} pounds"
                if keep[3] < 85
                else f"{weight * 0.4536:.2f} Kilograms"
            )
            parts.append(f'"Item Weight": "{weight_text}"')
        if keep[4] < 50:
            maker = brand if keep[5] < 60 else f"{brand} {_COMPANY_SUFFIXES[keep[5] % 5]}"
            parts.append(f'"Manufacturer": "{maker}"')
        if keep[6] < 60:
            parts.append(f'"Item model number": "{model}"')
        if keep[7] < 50:
            parts.append(
                f'"Best Sellers Rank": {{"{display}": {rank}, "{department}": {sub_rank}}}'
                if keep[8] < 60
                else f'"Best Sellers Rank": "#{rank:,} in {display} (See Top 100 in {display}) '
                f'#{sub_rank:,} in {department}"'
            )
        if keep[9] < 80:
            parts.append(
                f'"Date First Available": "{_MONTHS[keep[10] % 12]} {keep[11] % 28 + 1}, {year}"'
            )
        if keep[12] < 95:
            parts.append(f'"Brand": "{brand}"')
        if spec_label and keep[13] < 85:
            parts.append(f'"{spec_key}": "{spec_label}"')
        if keep[14] < 45:
            parts.append(f'"Material": "{material}"')
        if keep[15] < 45:
            parts.append(f'"Color": "{color}"')
        if pack > 1 and keep[1] >= 40:
            parts.append(f'"Number of Items": {pack}')
        if keep[3] >= 75:
            parts.append(f'"Batteries Included?": "{"No" if keep[2] < 70 else "Yes"}"')
        if keep[5] >= 85:
            parts.append('"Is Discontinued By Manufacturer": "No"')
        column.append("{" + ", ".join(parts) + "}")
    return column
