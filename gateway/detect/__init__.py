"""On-hub emergency detection: falls, vital signs, silence."""
