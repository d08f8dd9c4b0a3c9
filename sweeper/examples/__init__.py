"""Example tasks on scikit-learn's bundled data (nothing is downloaded)."""
