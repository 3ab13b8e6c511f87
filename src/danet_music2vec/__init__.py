"""danet-music2vec: remove environmental noise from music with DANet, then classify its genre with music2vec."""

__version__ = "0.1.0"
