"""Text for chapter 06: an offline corpus, tokenizers, retrieval and a customer-service set."""
