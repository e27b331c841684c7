"""Inference: resolving models, building prompts, driving runners, shaping replies."""
