"""shrinkface: distil face recognition from a big teacher to a phone or a Raspberry Pi.

The work lives in three sub-packages that follow the data flow:
``shrinkface.train`` → ``shrinkface.export`` → ``shrinkface.runtime`` (torch-free).
"""

__version__ = "0.1.0"
