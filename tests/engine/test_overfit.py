"""A tiny overfit per layer family: 16 samples with random labels are memorised (loss near zero).

If a layer family's forward or backward were broken (no gradient reaching its weights, a detached
tensor, a wrong axis), it could not drive the training loss to ~0. The last test makes sure every
built-in layer type is trained here.
"""
from __future__ import annotations

import pytest

import layerforge as lf

N = 16
CLASSES = 3

# family → (input_shape, layers). Each model ends in a dense layer with CLASSES logits.
CASES: dict[str, tuple] = {
    "core": ([6], [{"type": "dense", "units": 32}, {"type": "activation", "activation": "tanh"}]),
    "conv": ([1, 6, 6], [{"type": "conv2d", "filters": 8, "kernel_size": 3, "activation": "relu"},
                         {"type": "permute", "dims": [1, 2, 0]}, {"type": "reshape", "target_shape": [16, 8]},
                         {"type": "permute", "dims": [1, 0]},
                         {"type": "conv1d", "filters": 8, "kernel_size": 3, "activation": "relu"}, {"type": "flatten"}]),
    "pooling": ([2, 8, 8], [{"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
                            {"type": "maxpool2d", "pool_size": 2}, {"type": "avgpool2d", "pool_size": 2},
                            {"type": "reshape", "target_shape": [8, 4]}, {"type": "maxpool1d", "pool_size": 2},
                            {"type": "avgpool1d", "pool_size": 1}, {"type": "flatten"}]),
    "global_pool": ([6, 5], [{"type": "dense", "units": 32, "activation": "relu"}, {"type": "global_avg_pool"}]),
    "norm": ([1, 6, 6], [{"type": "conv2d", "filters": 8, "kernel_size": 3}, {"type": "batchnorm"},
                         {"type": "flatten"}, {"type": "dense", "units": 32}, {"type": "layernorm"},
                         {"type": "activation", "activation": "relu"}]),
    "regularization": ([6], [{"type": "dense", "units": 64, "activation": "relu"}, {"type": "dropout", "rate": 0.1}]),
    "simple_rnn": ([5, 3], [{"type": "simple_rnn", "units": 32}]),
    "lstm": ([5, 3], [{"type": "lstm", "units": 32}]),
    "gru": ([5, 3], [{"type": "gru", "units": 32, "bidirectional": True}]),
    "sequence": ([5, 3], [{"type": "masking", "mask_value": 0.0}, {"type": "dense", "units": 32, "activation": "relu"},
                          {"type": "sequence_pool", "mode": "max"}]),
    "self_attention": ([5, 4], [{"type": "self_attention", "units": 16}, {"type": "flatten"}]),
    "multi_head_attention": ([5, 8], [{"type": "multi_head_attention", "num_heads": 2}, {"type": "flatten"}]),
    "sparse_attention": ([8, 8], [{"type": "sparse_attention", "window": 4, "stride": 4, "num_heads": 2},
                                  {"type": "transformer_block", "ffn_dim": 16,
                                   "attention": {"type": "multi_head_attention", "num_heads": 2}},
                                  {"type": "flatten"}]),
    "embedding": ([5], [{"type": "embedding", "input_dim": 10, "output_dim": 8},
                        {"type": "positional_encoding", "kind": "learned", "max_len": 5}, {"type": "flatten"}]),
    "tensor_train": ([8], [{"type": "tt_dense", "units": 32, "cores": 2, "ranks": 2, "activation": "relu"}]),
    "quantum": ([6], [{"type": "dense", "units": 3}, {"type": "quantum_circuit", "qubits": 3, "layers": 1},
                      {"type": "dense", "units": 32, "activation": "relu"}]),
    "spiking": ([6], [{"type": "spike_encode", "mode": "direct", "steps": 3}, {"type": "dense", "units": 32},
                      {"type": "lif"}, {"type": "rlif"}, {"type": "spike_readout"}]),
    "merge": ([6], [{"type": "dense", "name": "a", "units": 16, "activation": "relu"},
                    {"type": "dense", "name": "b", "units": 16, "activation": "tanh", "inputs": ["input"]},
                    {"type": "add", "name": "s", "inputs": ["a", "b"]},
                    {"type": "concat", "inputs": ["s", "a"]}]),
    # the Keras-parity types (docs/keras.md), a few models that chain many of them
    "conv_variants": ([1, 5, 5], [{"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 4},
                                  {"type": "separable_conv2d", "filters": 8, "kernel_size": 2, "strides": 2},
                                  {"type": "conv2d_transpose", "filters": 8, "kernel_size": 2, "strides": 2},
                                  {"type": "upsampling2d", "size": 2, "interpolation": "bilinear"},
                                  {"type": "zero_padding2d", "padding": 1}, {"type": "cropping2d", "cropping": 2},
                                  {"type": "group_norm", "groups": 2}, {"type": "prelu", "shared_axes": [1, 2]},
                                  {"type": "spatial_dropout2d", "rate": 0.1}, {"type": "global_max_pool"}]),
    "sequence_resizing": ([4, 6], [{"type": "conv1d_transpose", "filters": 8, "kernel_size": 3, "strides": 2, "padding": "same"},
                                   {"type": "upsampling1d", "size": 2}, {"type": "zero_padding1d", "padding": 1},
                                   {"type": "cropping1d", "cropping": 2}, {"type": "spatial_dropout1d", "rate": 0.1},
                                   {"type": "flatten"}, {"type": "dense", "units": 16, "activation": "relu"},
                                   {"type": "repeat_vector", "n": 3},
                                   {"type": "time_distributed", "layer": {"type": "dense", "units": 16, "activation": "tanh"}},
                                   {"type": "rms_norm"}, {"type": "gaussian_noise", "stddev": 0.01}, {"type": "flatten"}]),
    "merge_more": ([6], [{"type": "dense", "name": "a", "units": 16, "activation": "relu"},
                         {"type": "dense", "name": "b", "units": 16, "activation": "tanh", "inputs": ["input"]},
                         {"type": "multiply", "name": "m", "inputs": ["a", "b"]},
                         {"type": "subtract", "name": "d", "inputs": ["a", "b"]},
                         {"type": "average", "name": "v", "inputs": ["a", "b", "m"]},
                         {"type": "maximum", "name": "hi", "inputs": ["m", "d"]},
                         {"type": "minimum", "name": "lo", "inputs": ["m", "d"]},
                         {"type": "dot", "name": "sim", "axes": 0, "inputs": ["a", "b"]},
                         {"type": "concat", "inputs": ["v", "hi", "lo", "sim"]}]),
}


def _bundle(shape: list[int] | dict, integer: bool = False, seed: int = 0):
    import torch

    from layerforge.data.bundle import DataBundle, Split

    g = torch.Generator().manual_seed(seed)
    if isinstance(shape, dict):
        x = {k: torch.randn(N, *v, generator=g) for k, v in shape.items()}
    elif integer:
        x = torch.randint(0, 10, (N, *shape), generator=g)
    else:
        x = torch.randn(N, *shape, generator=g)
    y = torch.randint(0, CLASSES, (N,), generator=g)
    return DataBundle(task="classification", train=Split(x, y), num_classes=CLASSES)


def _overfit(input_shape, layers, integer: bool = False, epochs: int = 250):
    spec = {"name": "overfit", "seed": 0, "model": {"input_shape": input_shape,
                                                    "layers": [*layers, {"type": "dense", "units": CLASSES}]},
            "train": {"epochs": epochs, "batch_size": N, "device": "cpu", "plots": False,
                      "optimizer": {"name": "adam", "lr": 0.01}, "metrics": ["accuracy"]}}
    return lf.train(spec, data=_bundle(input_shape, integer), save=False)


@pytest.mark.parametrize("case", list(CASES))
def test_tiny_model_memorises_sixteen_random_labels(case):
    shape, layers = CASES[case]
    result = _overfit(shape, layers, integer=case == "embedding")
    last = result.history[-1]
    assert last["loss"] < 0.05, f"{case}: loss only reached {last['loss']:.4f}"
    assert last["accuracy"] == 1.0


def test_cross_attention_between_two_inputs_memorises():
    layers = [{"type": "attention", "inputs": ["query", "memory"]}, {"type": "flatten"},
              {"type": "dense", "units": 32, "activation": "relu"}]
    result = _overfit({"query": [2, 6], "memory": [5, 6]}, layers)
    assert result.history[-1]["loss"] < 0.05


def test_regression_head_drives_mse_to_zero():
    import torch

    from layerforge.data.bundle import DataBundle, Split

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(N, 4, generator=g), torch.randn(N, 2, generator=g)
    spec = {"name": "reg", "model": {"input_shape": [4], "layers": [{"type": "dense", "units": 32, "activation": "tanh"},
                                                                     {"type": "dense", "units": 2}]},
            "train": {"epochs": 300, "batch_size": N, "device": "cpu", "optimizer": {"name": "adam", "lr": 0.01}}}
    result = lf.train(spec, data=DataBundle("regression", Split(x, y)), save=False)
    assert result.history[-1]["loss"] < 1e-3 and result.history[-1]["r2"] > 0.99


def test_every_builtin_layer_type_is_trained_by_an_overfit_case():
    from layerforge.layers.registry import registry

    reg = registry()
    used = {l["type"] for _, layers in CASES.values() for l in layers} | {"attention", "dense"}
    builtin = {n for n, c in reg.items() if c.__module__.startswith("layerforge.layers")}
    assert builtin <= used, f"layer types never trained here: {sorted(builtin - used)}"
    assert {reg[t].family for t in builtin} <= {reg[t].family for t in used}
