"""Texture model: crops, denoiser UNet, noise schedule and samplers, training, painters."""
