"""Pre-training: input pipeline, masking/sampling helpers, generator + discriminator model."""
