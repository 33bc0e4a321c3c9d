"""Model adapters: how the plugin reads layers of plain torch modules, torchvision CNNs, ViTs,
generative models, nnsight envoys and TransformerLens hook points (see ``milan_model_adapter``)."""
