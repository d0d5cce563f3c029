"""Table contracts (pandera): canonical raw-event tables and the daily feature tables."""
