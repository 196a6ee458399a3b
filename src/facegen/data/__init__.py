"""Data: the built-in synthetic faces, the CelebA reader, packed data sets and the loader."""
