"""Training runtime: wiring onto pamiq-core, PPO, reward handling."""
