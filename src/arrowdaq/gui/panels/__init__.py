"""The GUI's panels, one per dock: each takes the Link and builds itself from ``describe``."""
