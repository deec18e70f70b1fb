"""Profiles: a reusable "me" (portraits, voice, consent, identity LoRA)."""
