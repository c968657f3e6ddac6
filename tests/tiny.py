"""The tiny supernet the tests search with (imported by name: ``from tiny import TINY``)."""

# The smallest supernet that still has a normal and two reduction cells.
TINY = dict(space="s3", channels=4, layers=3, nodes=2, stem_multiplier=3)
