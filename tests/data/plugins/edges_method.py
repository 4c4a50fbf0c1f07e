"""A throw-away explanation method for tests/test_method_plugin.py: the image's edge strength.

It is a plugin, as a user would write one: one module, one `Method` subclass, one `register` call.
"""
from saliency_bench.config import Config
from saliency_bench.methods import Method, MethodConfig, Option, register


class Edges(Method):
    name = "edges"
    title = "Edges"
    options = (Option("--edge-power", "edges: exponent of the gradient magnitude (default 1)", type=float, default=1.0),)
    params = frozenset({"edge_power"})

    def configurations(self, config: Config) -> list[MethodConfig]:
        return [MethodConfig("edges", self.name, "sobel", None, ("--edge-power", "2"))]

    def variant(self, recorded: dict) -> str:
        return f"power={recorded['edge_power']:g}"

    def explain(self, model, images, target, *, batch_size: int, precision: str, edge_power: float = 1.0):
        import torch.nn.functional as F

        gray = images.mean(dim=1, keepdim=True)
        down = F.pad(gray[..., 1:, :] - gray[..., :-1, :], (0, 0, 0, 1))
        right = F.pad(gray[..., :, 1:] - gray[..., :, :-1], (0, 1, 0, 0))
        return (down**2 + right**2).sqrt()[:, 0] ** edge_power


register(Edges())
