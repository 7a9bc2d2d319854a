"""The substrate every lens stands on: data sets, architectures, training, cache, device, nn helpers."""
