"""The bundled audio and its references, installed with the package as asrbench.samples (pyproject.toml): the default
input of every engine. A checkout reads them here, in samples/."""
