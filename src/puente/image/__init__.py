"""Container images of the project built on this machine (no registry): the API's (``puente image``)."""
