"""The channel encoder of stages/model/vit.cpp in PyTorch, parameter for parameter, so
that encoders trained by eo-pipeline can be exported as TorchScript and TorchScript
encoders made in Python can be run by eo-pipeline.

    /usr/bin/python3 stages/model/python/eo_encoder.py export STATE.pkl CONFIG.json OUT.pt

STATE.pkl is written by `eo-pipeline` (torch::pickle_save of one encoder's parameters),
CONFIG.json holds dim, depth, heads, mlp_ratio, embed, patch, input, pooling, channels
(how many channel embeddings, 0 for none) and channel_proj (how many channel projections,
0 or absent for none).
"""
import json
import sys
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads)  # sequence first, as in LibTorch
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * mlp_ratio)
        self.fc2 = nn.Linear(dim * mlp_ratio, dim)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ChannelEncoder(nn.Module):
    """[N, 1, H, W] and each row's channel index [N] -> [N, embed]: one channel of a chip to
    its embedding. Without channel embeddings or projections the index is not needed."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: int, embed: int, patch: int, input: int,
                 pooling: str = "cls", channels: int = 0, channel_proj: int = 0):
        super().__init__()
        self.dim, self.patch, self.grid, self.mean_pool = dim, patch, input // patch, pooling == "mean"
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid + 1, dim))
        self.channel_embed = nn.Parameter(torch.zeros(channels, dim)) if channels else None
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, embed, bias=False)
        self.channel_proj = nn.Parameter(torch.zeros(channel_proj, dim, embed)) if channel_proj else None

    def forward(self, x, channel: Optional[torch.Tensor] = None):
        n = x.shape[0]
        x = self.patch_embed(x)
        gh, gw = x.shape[2], x.shape[3]
        x = x.flatten(2).transpose(1, 2)
        pos = self.pos_embed
        if gh != self.grid or gw != self.grid:
            grid = self.pos_embed[:, 1:].reshape(1, self.grid, self.grid, self.dim).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
            pos = torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, self.dim)], 1)
        x = torch.cat([self.cls_token.expand(n, 1, self.dim), x], 1) + pos
        if (self.channel_embed is not None or self.channel_proj is not None) and channel is None:
            raise ValueError("this encoder has channel embeddings or projections: give each row's channel index")
        if self.channel_embed is not None:
            x = x + self.channel_embed[channel].unsqueeze(1)
        x = x.transpose(0, 1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        pooled = x[1:].mean(0) if self.mean_pool else x[0]
        if self.channel_proj is None:
            return self.proj(pooled)
        return self.proj(pooled) + torch.bmm(pooled.unsqueeze(1), self.channel_proj[channel]).squeeze(1)


def export(state_file: str, config_file: str, out_file: str) -> None:
    config = json.load(open(config_file))
    encoder = ChannelEncoder(config["dim"], config["depth"], config["heads"], config["mlp_ratio"], config["embed"],
                             config["patch"], config["input"], config.get("pooling", "cls"), config.get("channels", 0),
                             config.get("channel_proj", 0))
    state = torch.load(state_file)
    encoder.load_state_dict({k: v for k, v in state.items()}, strict=True)
    encoder.eval()
    torch.jit.script(encoder).save(out_file)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "export":
        export(*sys.argv[2:])
    else:
        sys.exit(__doc__)
