"""Usage sources: where the local and the official figures come from (see ``base``)."""
