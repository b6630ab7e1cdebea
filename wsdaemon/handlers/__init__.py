"""Built-in handler implementations; each is loaded lazily by its plugin descriptor."""
