"""sweeper inside the trainers users already have: a callback for Lightning's ``Trainer``
(`sweeper.integrations.lightning`) and one for Hugging Face's ``transformers.Trainer``
(`sweeper.integrations.transformers`). Each imports its trainer only when imported itself.
"""
