"""One module per idea of the papers: each lens measures a trained model (model, data, *, ...)."""
