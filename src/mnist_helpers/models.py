"""The networks of the book, plus a registry to rebuild them by name: one per reference tutorial (MLP,
BatchNormMLP, CNN, SimpleCNN) and the book's own BNCNN (chapters 9 and 11).

Every model stores its constructor arguments in ``self.config`` so that a checkpoint can record
``(class name, config)`` and rebuild the exact architecture later without pickling any code.
All models return raw logits, except :class:`CNN`, which keeps tutorial D's ``log_softmax`` output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Module):
    """Fully connected net: Flatten -> [Linear, ReLU]* -> Linear.

    Tutorial A is ``MLP((256, 512, 344))``; tutorial B is ``MLP((128, 128))``.
    """

    batch_norm = False  # BatchNormMLP switches it on; a class attribute, so ``config`` stays the same

    def __init__(
        self,
        hidden: Sequence[int] = (256, 512, 344),
        in_features: int = 784,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "hidden": list(hidden),
            "in_features": in_features,
            "num_classes": num_classes,
        }
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if self.batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(nn.ReLU())
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class BatchNormMLP(MLP):
    """Tutorial C's net: Flatten -> [Linear, BatchNorm1d, ReLU]* -> Linear.

    Unlike the seed, it returns logits: a softmax in front of ``CrossEntropyLoss`` squashes the gradients
    and is the seed's main mistake.
    """

    batch_norm = True

    def __init__(
        self,
        hidden: Sequence[int] = (300, 100),
        in_features: int = 784,
        num_classes: int = 10,
    ) -> None:
        super().__init__(hidden, in_features, num_classes)


class CNN(nn.Module):
    """Tutorial D's small convnet: 1x28x28 -> conv5 -> pool -> conv3 -> 2000 -> 500 -> 10.

    It returns ``log_softmax`` as tutorial D does, so pair it with ``F.nll_loss``.
    ``F.cross_entropy`` gives the same value: log_softmax of log-probabilities
    changes nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)  # 28 -> 24, pooled to 12
        self.conv2 = nn.Conv2d(10, 20, kernel_size=3)  # 12 -> 10
        self.fc1 = nn.Linear(20 * 10 * 10, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), dim=1)


class SimpleCNN(nn.Module):
    """Tutorial E's VGG-style convnet: two [conv3, conv3, maxpool, dropout] blocks, then 3136 -> 128 -> 10.

    Layer names follow the seed (``conv1`` ... ``fc2``) so a reader can map one onto the other. It has
    467,818 parameters, not the seed's "~140K": 401,536 of them sit in ``fc1``.
    """

    def __init__(self, conv_dropout: float = 0.25, fc_dropout: float = 0.5) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "conv_dropout": conv_dropout,
            "fc_dropout": fc_dropout,
        }
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)  # 28 -> 14
        self.dropout1 = nn.Dropout(conv_dropout)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.pool2 = nn.MaxPool2d(2)  # 14 -> 7
        self.dropout2 = nn.Dropout(conv_dropout)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.dropout3 = nn.Dropout(fc_dropout)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dropout1(self.pool1(F.relu(self.conv2(F.relu(self.conv1(x))))))
        x = self.dropout2(self.pool2(F.relu(self.conv4(F.relu(self.conv3(x))))))
        x = self.dropout3(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


class BNCNN(nn.Module):
    """The book's own convnet: stages of [conv3, BatchNorm, ReLU] layers, a 2x2 max-pool between stages,
    then a global max-pool and one linear layer.

    Stage ``i`` has ``depths[i]`` conv layers of ``widths[i]`` channels, at 28, 14, 7, ... pixels.
    BatchNorm lets it train at a high learning rate from the first step (chapter 5), and the global max-pool
    ("is this feature anywhere?") replaces SimpleCNN's 401,536-weight ``fc1``, so almost all the work is
    convolutions, what a CPU's matrix units do fastest. Chapter 9's speed run uses a small one
    (:data:`~mnist_helpers.recipes.RECIPES` ``"speedrun"``), chapter 11's leaderboard a wider one (``"bncnn"``).
    """

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64),
        depths: Sequence[int] = (2, 2, 1),
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths or min(*widths, *depths) < 1:
            raise ValueError(
                f"BNCNN needs one positive depth per positive width; got widths={list(widths)}, "
                f"depths={list(depths)}"
            )
        self.config: dict[str, Any] = {
            "widths": list(widths),
            "depths": list(depths),
            "num_classes": num_classes,
        }
        layers: list[nn.Module] = []
        channels = 1
        for stage, (width, depth) in enumerate(zip(widths, depths)):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(depth):
                # no conv bias: the BatchNorm right after it subtracts the mean and adds its own shift
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class FastCNN(nn.Module):
    """Two convolutions and one hidden layer, laid out for speed on a CPU: the network behind chapter 9's
    fastest fp32 recipes (after tuomaso/train_mnist_fast).

    [5x5 conv, 2x2 max-pool, BatchNorm, ReLU], then [3x3 conv, 2x2 max-pool, BatchNorm, ReLU], then a
    ``hidden``-unit layer. Pooling *before* BatchNorm and ReLU hands them a quarter of the values (not exactly
    the same maths: the batch statistics are those of the pooled values, which trains as well); the unpadded
    5x5 first layer shrinks 28 pixels to 24 at once. Almost all the work is two convolutions and two matrix
    products on a few large tensors, so a step costs few kernel launches.
    """

    def __init__(
        self, widths: Sequence[int] = (24, 32), hidden: int = 256, num_classes: int = 10
    ) -> None:
        super().__init__()
        if len(widths) != 2 or min(*widths, hidden) < 1:
            raise ValueError(
                f"FastCNN needs two positive widths and a positive hidden size; got widths={list(widths)}, "
                f"hidden={hidden}"
            )
        self.config: dict[str, Any] = {
            "widths": list(widths),
            "hidden": hidden,
            "num_classes": num_classes,
        }
        first, second = widths
        self.features = nn.Sequential(
            nn.Conv2d(1, first, 5),  # 28 -> 24 pixels
            nn.MaxPool2d(2),  # -> 12
            nn.BatchNorm2d(first),
            nn.ReLU(inplace=True),
            nn.Conv2d(first, second, 3),  # -> 10
            nn.MaxPool2d(2),  # -> 5
            nn.BatchNorm2d(second),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(second * 5 * 5, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters; buffers such as BatchNorm running stats are not counted."""
    return sum(
        p.numel() for p in model.parameters() if p.requires_grad or not trainable_only
    )


MODEL_REGISTRY: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "bnmlp": BatchNormMLP,
    "cnn": CNN,
    "simplecnn": SimpleCNN,
    "bncnn": BNCNN,
    "fastcnn": FastCNN,
}


def build_model(name: str, **config: Any) -> nn.Module:
    """Instantiate a registered model by short name, e.g. ``build_model("mlp", hidden=(128, 128))``."""
    key = name.lower()
    if key not in MODEL_REGISTRY:
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(MODEL_REGISTRY)}"
        )
    return MODEL_REGISTRY[key](**config)
