"""The tiny model the tests train, export and separate with: seconds on two CPU cores."""
TINY_MODEL = ["--in_channels", "16", "--out_channels", "16", "--hidden_channels", "16", "--bn_channels", "16",
              "--num_layers", "1", "--K", "20", "--kernel_size", "16"]
TINY_TRAINING = TINY_MODEL + ["--segment", "1", "--batch_size", "2"]
