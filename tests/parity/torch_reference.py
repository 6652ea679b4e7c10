#!/usr/bin/env python3
"""PyTorch side of the parity test (tests/test_parity.cpp).

For each model it builds the PyTorch module from stock torch.nn layers written the way
timm (ViT, RegNetY) and torchvision (ResNet) write them — or, for resnet18, torchvision's own
model — then saves to one safetensors file:
  param.<name>        the initial state dict (qilin loads it),
  input, target       one batch of images and labels,
  logits, loss        forward in train mode, cross-entropy (mean),
  grad.<name>         every parameter's gradient,
  after.<name>        buffers after the forward (BatchNorm running stats),
  sgd.<name>          parameters after one SGD step (lr 0.1, momentum 0.9, nesterov, wd 5e-4),
  adamw.<name>        parameters after one AdamW step (lr 1e-3, betas (0.9, 0.999), wd 0.05),
all from the same initial weights and gradients.

Usage: torch_reference.py OUT_DIR [MODEL ...]   (models: vit resnet20 resnet18 regnety)
       torch_reference.py OUT_DIR int8   PyTorch's int8 fake quantization into int8.safetensors:
           x, per_tensor (fake_quantize_per_tensor_affine with scale amax / 127, zero point 0,
           range [-127, 127]), per_channel (fake_quantize_per_channel_affine along axis 0), and
           the float32 scales used (scale_tensor [1], scale_channel [rows]).
Writes safetensors with plain json/struct (the safetensors module is not a dependency).
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)


# ---- safetensors writer (format: u64 LE header length, JSON header, raw LE data) ----
def save_safetensors(path, tensors):
    dtypes = {torch.float32: "F32", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ---- timm-style VisionTransformer, stock torch.nn only ----
class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, in_chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64,
                 depth=4, num_heads=4, mlp_ratio=4.0):
        super().__init__()
        n_patches = (img_size // patch_size) ** 2
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches + 1, embed_dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        nn.init.normal_(self.cls_token, std=1e-2)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


# ---- CIFAR-style ResNet-20 with torchvision's BasicBlock and names ----
class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet20(nn.Module):
    def __init__(self, in_chans=1, num_classes=10, widths=(16, 32, 64), blocks=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        inplanes = widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers = []
            for b in range(blocks):
                down = None
                if b == 0 and (stride != 1 or inplanes != w):
                    down = nn.Sequential(nn.Conv2d(inplanes, w, 1, stride, bias=False), nn.BatchNorm2d(w))
                layers.append(BasicBlock(inplanes, w, stride if b == 0 else 1, down))
                inplanes = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---- timm-style RegNetY (models/regnety.h): timm regnet.RegNet with Y blocks, timm's names ----
class ConvNormAct(nn.Module):
    """timm ConvNormAct: conv (no bias, padding k // 2), BatchNorm, optional ReLU (timm keeps the
    ReLU inside bn; it has no state, so the state-dict names are conv.* and bn.* either way)."""

    def __init__(self, in_chs, out_chs, kernel, stride=1, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SEModule(nn.Module):
    """timm SEModule: x * sigmoid(fc2(relu(fc1(mean_hw(x))))), fc1/fc2 1x1 convs with bias."""

    def __init__(self, channels, reduced):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class RegBottleneck(nn.Module):
    """timm regnet.Bottleneck: conv1 1x1, conv2 3x3 grouped (stride), SE, conv3 1x1 (no act),
    plus the shortcut (downsample 1x1 conv + BN when width or stride changes), then ReLU."""

    def __init__(self, in_chs, out_chs, stride, group_width=8, bottle_ratio=1.0, se_ratio=0.25):
        super().__init__()
        mid = int(round(out_chs * bottle_ratio))
        self.conv1 = ConvNormAct(in_chs, mid, 1)
        self.conv2 = ConvNormAct(mid, mid, 3, stride, groups=mid // group_width)
        self.se = SEModule(mid, max(1, int(round(in_chs * se_ratio)))) if se_ratio else nn.Identity()
        self.conv3 = ConvNormAct(mid, out_chs, 1, act=False)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = (ConvNormAct(in_chs, out_chs, 1, stride, act=False)
                           if in_chs != out_chs or stride != 1 else None)

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.conv3(self.se(self.conv2(self.conv1(x))))
        return self.act3(y + shortcut)


class RegNetY(nn.Module):
    """qilin's regnety (models/regnety.cpp): stem 3x3 stride-2 conv + BN + ReLU to stem_width,
    stages s1..sN of blocks b1..bM (the first with stride 2), head: global average pool, fc.
    Init as timm's _init_weights (conv N(0, 2 / fan_out) with fan_out = k*k*out / groups, BN 1/0,
    fc N(0, .01), zero biases) and Bottleneck.zero_init_last (conv3.bn.weight = 0)."""

    def __init__(self, in_chans=1, num_classes=10, stem_width=32, widths=(24, 56, 152),
                 depths=(1, 2, 4), group_width=8, bottle_ratio=1.0, se_ratio=0.25):
        super().__init__()
        self.stem = ConvNormAct(in_chans, stem_width, 3, 2)
        chs = stem_width
        for i, (w, d) in enumerate(zip(widths, depths)):
            stage = nn.Module()  # children b1..bd: timm RegStage's names
            for j in range(d):
                stage.add_module(f"b{j + 1}", RegBottleneck(chs, w, 2 if j == 0 else 1, group_width,
                                                            bottle_ratio, se_ratio))
                chs = w
            setattr(self, f"s{i + 1}", stage)
        self.num_stages = len(widths)
        self.head = nn.Module()
        self.head.fc = nn.Linear(chs, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, RegBottleneck):
                nn.init.zeros_(m.conv3.bn.weight)

    def forward(self, x):
        x = self.stem(x)
        for i in range(self.num_stages):
            for block in getattr(self, f"s{i + 1}").children():
                x = block(x)
        return self.head.fc(x.mean((2, 3)))


def build(name):
    """Model and input shape (B, C, H, W)."""
    if name == "vit":
        return VisionTransformer(), (8, 1, 28, 28), 10
    if name == "resnet20":
        return ResNet20(), (8, 1, 28, 28), 10
    if name == "regnety":
        return RegNetY(), (8, 1, 28, 28), 10
    if name == "resnet18":
        import torchvision
        return torchvision.models.resnet18(), (8, 3, 64, 64), 1000
    raise SystemExit(f"unknown model {name!r}: expected vit, resnet20, regnety or resnet18")


def run(name, out_dir):
    torch.manual_seed(0)
    model, shape, classes = build(name)
    model.train()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=gen)
    y = torch.randint(0, classes, (shape[0],), generator=gen)
    out = {f"param.{k}": v.clone() for k, v in model.state_dict().items()}
    out["input"], out["target"] = x, y

    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out["logits"], out["loss"] = logits.detach(), loss.detach().reshape(1)
    for k, p in model.named_parameters():
        out[f"grad.{k}"] = p.grad.clone()
    for k, b in model.named_buffers():
        out[f"after.{k}"] = b.clone()

    params = dict(model.named_parameters())
    start = {k: p.detach().clone() for k, p in params.items()}
    for opt_name, make in (("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                                                weight_decay=5e-4)),
                           ("adamw", lambda ps: torch.optim.AdamW(ps, lr=1e-3, betas=(0.9, 0.999),
                                                                  eps=1e-8, weight_decay=0.05))):
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(start[k])
        opt = make(list(params.values()))
        opt.step()
        for k, p in params.items():
            out[f"{opt_name}.{k}"] = p.detach().clone()
    save_safetensors(os.path.join(out_dir, f"{name}.safetensors"), out)


def run_int8(out_dir):
    """Symmetric int8 fake quantization as PyTorch computes it (x * (1 / scale), rounded half to
    even, clamped), on Gaussian rows plus values within an ulp of every rounding midpoint of
    each row's grid, where x / scale and x * (1 / scale) can round apart."""
    gen = torch.Generator().manual_seed(3)
    rows = 16
    x = torch.randn(rows, 4096, generator=gen) * torch.linspace(0.01, 10.0, rows).unsqueeze(1)
    amax_rows = x.abs().amax(dim=1)
    scale_rows = amax_rows / 127.0  # float32 division, as qilin's int8_scale_for_amax
    ties = []
    for r in range(rows):
        mid = (torch.arange(-127, 127, dtype=torch.float32) + 0.5) * scale_rows[r]
        ties.append(torch.cat([mid, torch.nextafter(mid, mid + 1), torch.nextafter(mid, mid - 1)]))
    x = torch.cat([x, torch.stack(ties)], dim=1).contiguous()
    scale_tensor = (x.abs().amax() / 127.0).reshape(1)
    zero = torch.zeros(1, dtype=torch.int32)
    per_tensor = torch.fake_quantize_per_tensor_affine(x, scale_tensor, zero, -127, 127)
    per_channel = torch.fake_quantize_per_channel_affine(x, scale_rows, torch.zeros(rows, dtype=torch.int32),
                                                         0, -127, 127)
    save_safetensors(os.path.join(out_dir, "int8.safetensors"),
                     {"x": x, "per_tensor": per_tensor, "per_channel": per_channel,
                      "scale_tensor": scale_tensor, "scale_channel": scale_rows})


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for model_name in sys.argv[2:] or ["vit", "resnet20", "resnet18"]:
        if model_name == "int8":
            run_int8(sys.argv[1])
        else:
            run(model_name, sys.argv[1])
