"""Built-in drivers, one module each. Register new ones in `arrowdaq.instruments.registry`."""
