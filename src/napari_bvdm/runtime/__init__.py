"""Runtime services shared by every stage: progress events, cancel, devices, seeds, configs, weights."""
