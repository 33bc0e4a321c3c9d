"""MILAN: the encoder, captioner p(d|E), language model p(d), decoding, training and checkpoints."""
