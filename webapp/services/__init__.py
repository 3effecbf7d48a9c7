"""Business rules. Functions here take a session and plain values, and never touch ``request``."""
