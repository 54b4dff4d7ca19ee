"""PyTorch habits: small snippets written exactly as a PyTorch user writes them.

Each is real PyTorch code (tests/test_pytorch_habits.py runs it under torch too); under convolve only the module
names change (`import torch` -> `import convolve as torch`, `torch.nn` -> `convolve.nn`, `torch.utils.data` ->
`convolve.utils.data`). A habit either runs unchanged (`fails=None`) or cannot work in a NumPy CPU framework, and
must then fail with a message matching `fails` that says what to do instead.
"""

from __future__ import annotations

from typing import NamedTuple


class Habit(NamedTuple):
    name: str
    code: str
    fails: str | None = None  # regex of the error message when the habit cannot work here


NET = """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.conv1(x))))
        x = torch.flatten(x, 1)
        return self.fc(x)

torch.manual_seed(0)
model = Net()
images = torch.randn(16, 1, 8, 8)
labels = torch.randint(0, 10, (16,))
"""

HABITS = [
    Habit("training loop", NET + """
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
for epoch in range(2):
    optimizer.zero_grad()
    loss = criterion(model(images), labels)
    loss.backward()
    optimizer.step()
print(f"loss {loss.item():.3f}")
"""),
    Habit("accuracy with torch.max(outputs.data, 1)", NET + """
correct = total = 0
with torch.no_grad():
    outputs = model(images)
    _, predicted = torch.max(outputs.data, 1)
    total += labels.size(0)
    correct += (predicted == labels).sum().item()
acc = 100 * correct / total
"""),
    Habit("pred.eq(target.view_as(pred))", NET + """
output = F.log_softmax(model(images), dim=1)
pred = output.argmax(dim=1, keepdim=True)
correct = pred.eq(labels.view_as(pred)).sum().item()
test_loss = F.nll_loss(output, labels, reduction="sum").item()
"""),
    Habit("device selection", NET + """
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = model.to(device)
x, y = images.to(device), labels.to(device)
out = model(x).cpu().detach().numpy()
"""),
    Habit("TensorDataset and DataLoader", """
import torch
from torch.utils.data import DataLoader, TensorDataset
x = torch.randn(100, 3)
y = torch.randint(0, 2, (100,))
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, drop_last=True)
for xb, yb in loader:
    assert xb.shape == (32, 3) and yb.shape == (32,)
assert len(loader) == 3
"""),
    Habit("custom Dataset class", """
import torch
from torch.utils.data import Dataset, DataLoader

class Squares(Dataset):
    def __init__(self, n):
        self.n = n
    def __len__(self):
        return self.n
    def __getitem__(self, i):
        return torch.tensor([float(i)]), i * i

batches = list(DataLoader(Squares(10), batch_size=4))
assert batches[0][0].shape == (4, 1) and batches[0][1].tolist() == [0, 1, 4, 9]
"""),
    Habit("a list of pairs as a dataset", """
import numpy as np
import torch
pairs = [(np.ones((2, 2), dtype=np.float32) * i, i) for i in range(6)]
for x, y in torch.utils.data.DataLoader(pairs, batch_size=4):
    assert x.dtype == torch.float32 and y.dtype == torch.int64
"""),
    Habit("dict samples and a collate_fn", """
import torch
from torch.utils.data import DataLoader, default_collate
samples = [{"x": torch.randn(3), "y": i} for i in range(5)]
batch = next(iter(DataLoader(samples, batch_size=5)))
assert batch["x"].shape == (5, 3) and batch["y"].tolist() == [0, 1, 2, 3, 4]
def collate(batch):
    return default_collate(batch)
assert next(iter(DataLoader(samples, batch_size=2, collate_fn=collate)))["x"].shape == (2, 3)
"""),
    Habit("num_workers and a seeded generator", """
import torch
from torch.utils.data import DataLoader, TensorDataset
ds = TensorDataset(torch.arange(20))
g = torch.Generator()
g.manual_seed(0)
first = torch.cat([b[0] for b in DataLoader(ds, batch_size=5, shuffle=True, num_workers=2, generator=g)])
assert sorted(first.tolist()) == list(range(20))
"""),
    Habit("samplers", """
import torch
from torch.utils.data import DataLoader, TensorDataset, SubsetRandomSampler, BatchSampler, SequentialSampler
ds = TensorDataset(torch.arange(10))
loader = DataLoader(ds, batch_size=2, sampler=SubsetRandomSampler([0, 2, 4, 6]))
assert sorted(torch.cat([b[0] for b in loader]).tolist()) == [0, 2, 4, 6]
assert list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False)) == [[0, 1], [2, 3], [4]]
"""),
    Habit("WeightedRandomSampler", """
import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler
ds = TensorDataset(torch.arange(4))
sampler = WeightedRandomSampler([0.0, 0.0, 1.0, 1.0], num_samples=8, replacement=True)
drawn = torch.cat([b[0] for b in DataLoader(ds, batch_size=4, sampler=sampler)])
assert set(drawn.tolist()) <= {2, 3}
"""),
    Habit("random_split and Subset", """
import torch
from torch.utils.data import random_split, Subset, TensorDataset
ds = TensorDataset(torch.randn(10, 2), torch.arange(10))
train, val = random_split(ds, [8, 2], generator=torch.Generator().manual_seed(42))
assert len(train) == 8 and len(val) == 2
x, y = Subset(ds, [3, 5])[1]
assert y.item() == 5
"""),
    Habit("LambdaLR warm-up", """
import torch
p = torch.nn.Parameter(torch.zeros(1))
opt = torch.optim.SGD([p], lr=0.1)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lambda epoch: min(1.0, (epoch + 1) / 5))
for _ in range(3):
    opt.step()
    sched.step()
lr = sched.get_last_lr()[0]
"""),
    Habit("MultiplicativeLR", """
import torch
opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
sched = torch.optim.lr_scheduler.MultiplicativeLR(opt, lr_lambda=lambda epoch: 0.95)
opt.step(); sched.step()
"""),
    Habit("CosineAnnealingWarmRestarts per batch", """
import torch
opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=10, T_mult=2, eta_min=1e-4)
iters = 4
for epoch in range(3):
    for i in range(iters):
        opt.step()
        sched.step(epoch + i / iters)
"""),
    Habit("CyclicLR", """
import torch
opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
sched = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.001, max_lr=0.1, step_size_up=5, mode="triangular2")
for _ in range(12):
    opt.step()
    sched.step()
"""),
    Habit("OneCycleLR and StepLR", """
import torch
opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, weight_decay=0.01)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=10)
opt.step(); sched.step()
opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
step = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
opt2.step(); step.step()
assert opt2.param_groups[0]["lr"] == 0.1
"""),
    Habit("F.interpolate and nn.Upsample", """
import torch
import torch.nn as nn
import torch.nn.functional as F
x = torch.randn(1, 3, 8, 8)
y = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
z = F.interpolate(x, size=(5, 5), mode="nearest")
up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(3, 3, 3, padding=1))
assert y.shape == (1, 3, 16, 16) and z.shape == (1, 3, 5, 5) and up(x).shape == (1, 3, 16, 16)
"""),
    Habit("modern activations and norms", """
import torch
import torch.nn as nn
block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU(), nn.Flatten(),
                      nn.Linear(8 * 4 * 4, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 4), nn.Softmax(dim=1))
out = block(torch.randn(2, 3, 4, 4))
assert out.shape == (2, 4)
logp = nn.LogSoftmax(dim=1)(torch.randn(2, 4))
"""),
    Habit("one_hot", """
import torch
import torch.nn.functional as F
labels = torch.tensor([0, 2, 1])
target = F.one_hot(labels, num_classes=3).float()
assert target.sum().item() == 3
"""),
    Habit("init.orthogonal_ via model.apply", """
import torch.nn as nn
def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.orthogonal_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 4))
model.apply(init_weights)
"""),
    Habit("Tensor.softmax / argmax / contiguous / type", """
import torch
x = torch.randn(4, 5)
probs = x.softmax(dim=-1)
best = probs.argmax(dim=-1)
flat = x.t().contiguous().view(-1)
as_double = x.type(torch.float64)
assert as_double.dtype == torch.float64 and flat.shape == (20,) and best.shape == (4,)
"""),
    Habit("register_hook on a tensor", """
import torch
x = torch.randn(3, requires_grad=True)
y = x * 2
grads = []
y.register_hook(lambda g: grads.append(g))
y.sum().backward()
assert len(grads) == 1
"""),
    Habit("device, cpu(), to('cpu')", """
import torch
x = torch.randn(2, 2)
assert str(x.device) == "cpu"
y = x.cpu().to("cpu").numpy()
z = torch.zeros(3, device="cpu")
"""),
    Habit("argmax, as_tensor, from_numpy", """
import numpy as np
import torch
a = np.arange(6, dtype=np.float32).reshape(2, 3)
t = torch.from_numpy(a)
u = torch.as_tensor(a)
idx = torch.argmax(t, dim=1)
assert idx.tolist() == [2, 2] and u.shape == (2, 3)
"""),
    Habit("inference_mode", NET + """
model.eval()
with torch.inference_mode():
    out = model(images)
assert not out.requires_grad
"""),
    Habit("@torch.no_grad() and @torch.no_grad", NET + """
@torch.no_grad()
def evaluate(m):
    return m(images).argmax(1)

@torch.no_grad
def evaluate_bare(m):
    return m(images).argmax(1)

assert evaluate(model).shape == evaluate_bare(model).shape == (16,)
"""),
    Habit("register_full_backward_hook", NET + """
seen = []
model.fc.register_full_backward_hook(lambda module, grad_input, grad_output: seen.append(grad_output[0].shape))
F.cross_entropy(model(images), labels).backward()
assert seen == [(16, 10)]
"""),
    Habit("forward hooks for features", NET + """
features = {}
def save(name):
    def hook(module, inputs, output):
        features[name] = output.detach()
    return hook
handle = model.conv1.register_forward_hook(save("conv1"))
model(images)
handle.remove()
assert features["conv1"].shape == (16, 4, 8, 8)
"""),
    Habit("custom autograd.Function", """
import torch

class MyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return input.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        grad_input = grad_output.clone()
        grad_input[input < 0] = 0
        return grad_input

x = torch.randn(5, requires_grad=True)
MyReLU.apply(x).sum().backward()
assert ((x.grad == 1) == (x > 0)).all()
"""),
    Habit("save and load a state_dict", NET + """
import os, tempfile
path = os.path.join(tempfile.mkdtemp(), "model.pt")
torch.save(model.state_dict(), path)
model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
torch.save({"epoch": 3, "model": model.state_dict()}, path)
checkpoint = torch.load(path, map_location=torch.device("cpu"))
assert checkpoint["epoch"] == 3
"""),
    Habit("counting parameters", NET + """
n = sum(p.numel() for p in model.parameters() if p.requires_grad)
names = [name for name, _ in model.named_parameters()]
assert n > 0 and "conv1.weight" in names and "bn.running_mean" in model.state_dict()
"""),
    Habit("seeding everything", """
import random
import numpy as np
import torch
def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
seed_everything(0)
"""),
    Habit("set_grad_enabled in a train/eval helper", NET + """
for phase in ["train", "val"]:
    model.train() if phase == "train" else model.eval()
    with torch.set_grad_enabled(phase == "train"):
        out = model(images)
    assert out.requires_grad == (phase == "train")
"""),
    Habit("tensor creation and dtypes", """
import torch
a = torch.tensor([1, 2, 3], dtype=torch.long)
b = torch.zeros(2, 3, dtype=torch.float32)
c = torch.ones_like(b)
d = torch.arange(0, 10, 2)
e = torch.full((2, 2), 7.0)
f = torch.eye(3)
g = torch.linspace(0, 1, 5)
h = torch.empty(2, 2).uniform_(0, 1) if hasattr(torch.Tensor, "uniform_") else torch.rand(2, 2)
assert a.dtype == torch.int64 and d.tolist() == [0, 2, 4, 6, 8] and e.sum().item() == 28
"""),
    Habit("shape manipulation", """
import torch
x = torch.randn(2, 3, 4, 5)
assert x.permute(0, 2, 3, 1).shape == (2, 4, 5, 3)
assert x.view(x.size(0), -1).shape == (2, 60) and x.reshape(-1, 5).shape == (24, 5)
assert x.flatten(1).shape == (2, 60) and x[0].unsqueeze(0).shape == (1, 3, 4, 5)
assert torch.cat([x, x], dim=1).shape == (2, 6, 4, 5) and torch.stack([x, x]).shape == (2, 2, 3, 4, 5)
assert x.mean(dim=(2, 3)).shape == (2, 3) and x.sum(dim=1, keepdim=True).shape == (2, 1, 4, 5)
assert x.transpose(1, 2).shape == (2, 4, 3, 5) and x[:, :1].squeeze(1).shape == (2, 4, 5)
"""),
    Habit("elementwise math", """
import torch
x = torch.randn(3, 4)
y = torch.where(x > 0, x, torch.zeros_like(x))
z = torch.clamp(x, min=-1, max=1)
w = torch.sigmoid(x) * torch.tanh(x) + torch.exp(-x.abs()) + torch.sqrt(x ** 2 + 1)
s = torch.softmax(x, dim=1)
assert torch.allclose(s.sum(dim=1), torch.ones(3))
"""),
    Habit("topk accuracy", """
import torch
output = torch.randn(8, 10)
target = torch.randint(0, 10, (8,))
_, pred = output.topk(5, 1, True, True)
pred = pred.t()
correct = pred.eq(target.view(1, -1).expand_as(pred))
top5 = correct[:5].reshape(-1).float().sum(0, keepdim=True)
"""),
    Habit("losses with their options", """
import torch
import torch.nn as nn
import torch.nn.functional as F
logits, target = torch.randn(4, 3, requires_grad=True), torch.tensor([0, 2, 1, 2])
loss = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 1.0]), label_smoothing=0.1)(logits, target)
loss = loss + F.mse_loss(logits, torch.zeros(4, 3)) + F.binary_cross_entropy_with_logits(
    logits, torch.ones(4, 3))
loss.backward()
"""),
    Habit("optimizer param groups and scheduler state", """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
opt = torch.optim.SGD([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 1e-3}],
                      lr=1e-2, momentum=0.9)
for g in opt.param_groups:
    g["lr"] *= 0.5
state = {"optimizer": opt.state_dict()}
opt.load_state_dict(state["optimizer"])
"""),
    Habit("ModuleList and ModuleDict", """
import torch
import torch.nn as nn
class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 1), "b": nn.Linear(4, 2)})
    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.heads["b"](x)
assert Tower()(torch.randn(5, 4)).shape == (5, 2)
"""),
    Habit("in-place gradient bookkeeping", """
import torch
w = torch.randn(3, requires_grad=True)
(w * w).sum().backward()
with torch.no_grad():
    w -= 0.1 * w.grad
    w.grad.zero_()
assert w.requires_grad
"""),
    Habit("x.half() / float16 is honest", """
import torch
x = torch.randn(2, 2).half()
assert x.dtype == torch.float16
"""),
    Habit("randperm and manual shuffling", """
import torch
x = torch.arange(10)
perm = torch.randperm(10)
assert sorted(x[perm].tolist()) == list(range(10))
"""),
    Habit("isnan / isfinite checks", """
import torch
loss = torch.tensor(float("nan"))
if torch.isnan(loss) or not torch.isfinite(loss):
    skipped = True
"""),
    Habit("DataLoader with timeout and worker_init_fn", """
import torch
from torch.utils.data import DataLoader
def init_worker(worker_id):
    torch.manual_seed(1234 + worker_id)
loader = DataLoader(list(range(6)), batch_size=2, num_workers=2, timeout=5, worker_init_fn=init_worker)
assert [b.tolist() for b in loader] == [[0, 1], [2, 3], [4, 5]]
"""),
    Habit("bicubic upsampling", """
import torch
import torch.nn.functional as F
y = F.interpolate(torch.randn(1, 1, 4, 4), scale_factor=2, mode="bicubic", align_corners=False)
assert y.shape == (1, 1, 8, 8)
"""),
    Habit("ConcatDataset", """
import torch
from torch.utils.data import ConcatDataset, TensorDataset, DataLoader
both = ConcatDataset([TensorDataset(torch.zeros(3, 2)), TensorDataset(torch.ones(2, 2))])
assert len(both) == 5 and both[4][0].tolist() == [1.0, 1.0]
assert sum(len(b[0]) for b in DataLoader(both, batch_size=2)) == 5
"""),
    Habit("std, var and normalising a batch", """
import torch
x = torch.randn(8, 3, 4, 4)
mean = x.mean(dim=(0, 2, 3), keepdim=True)
std = x.std(dim=(0, 2, 3), keepdim=True)
z = (x - mean) / (std + 1e-5)
assert z.shape == x.shape and torch.std(x).item() > 0
"""),
    Habit("sort, masked_fill, new_zeros", """
import torch
scores = torch.randn(2, 5)
values, order = scores.sort(dim=1, descending=True)
masked = scores.masked_fill(scores < 0, float("-inf"))
z = scores.new_zeros(2, 3)
assert order.dtype == torch.int64 and z.shape == (2, 3)
"""),
    Habit("grad of a non-leaf with retain_grad", """
import torch
x = torch.randn(3, requires_grad=True)
h = x * 3
h.retain_grad()
(h ** 2).sum().backward()
assert torch.allclose(h.grad, 2 * h.detach())
"""),
    Habit("binary classification with BCEWithLogitsLoss", """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 8), nn.PReLU(), nn.Linear(8, 1))
criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))
x, y = torch.randn(16, 4), torch.randint(0, 2, (16, 1)).float()
loss = criterion(model(x), y)
loss.backward()
probs = torch.sigmoid(model(x)).detach()
bce = nn.BCELoss()(probs, y)
"""),
    Habit("regression losses", """
import torch
import torch.nn as nn
import torch.nn.functional as F
pred, target = torch.randn(8, 2, requires_grad=True), torch.randn(8, 2)
loss = nn.L1Loss()(pred, target) + nn.SmoothL1Loss(beta=0.5)(pred, target) + F.huber_loss(pred, target)
loss.backward()
"""),
    Habit("more activations", """
import torch
import torch.nn as nn
import torch.nn.functional as F
x = torch.randn(2, 3, 4)
y = nn.Sequential(nn.Softplus(), nn.Hardswish(), nn.Mish())(x) + F.softplus(x, beta=2)
"""),
    Habit("torch.autograd.grad for a gradient penalty", """
import torch
x = torch.randn(4, 3, requires_grad=True)
w = torch.randn(3, requires_grad=True)
out = (x * w).sum()
(grad_x,) = torch.autograd.grad(out, x)
penalty = grad_x.pow(2).sum()
assert x.grad is None and grad_x.shape == (4, 3)
"""),
    Habit("get_worker_info in a dataset", """
import torch
from torch.utils.data import Dataset, DataLoader, get_worker_info
class Tagged(Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        info = get_worker_info()
        return i if info is None else i + 100 * info.id
assert get_worker_info() is None
assert sum(len(b) for b in DataLoader(Tagged(), batch_size=2, num_workers=2)) == 4
"""),
    Habit("ConstantLR warm-up chained with PolynomialLR", """
import torch
opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
warm = torch.optim.lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=2)
decay = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=8, power=2.0)
sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, decay], milestones=[2])
for _ in range(5):
    opt.step()
    sched.step()
"""),
    Habit("a streaming IterableDataset sharded over workers", """
import torch
from torch.utils.data import IterableDataset, DataLoader, get_worker_info
class Lines(IterableDataset):
    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(start, 20, step):
            yield torch.tensor([float(i)]), i % 2
got = [y for _, ys in DataLoader(Lines(), batch_size=4, num_workers=2) for y in ys.tolist()]
assert len(got) == 20
"""),
    Habit("Embedding, padding layers and InstanceNorm", """
import torch
import torch.nn as nn
emb = nn.Embedding(10, 4, padding_idx=0)
feats = emb(torch.tensor([[1, 2, 0]]))
x = nn.ReflectionPad2d(1)(torch.randn(1, 3, 4, 4))
y = nn.InstanceNorm2d(3, affine=True)(x)
assert feats.shape == (1, 3, 4) and y.shape == (1, 3, 6, 6)
"""),
    Habit("tensor plumbing", """
import torch
x = torch.arange(12.0).reshape(3, 4)
a, b = x.chunk(2, dim=1)
parts = torch.split(x, 2)
rows = torch.chunk(x, 3)
y = x.repeat(2, 1).flip(0).cumsum(dim=1)
idx = x.argmax(dim=1, keepdim=True)
best = x.gather(1, idx)
sim = torch.nn.functional.cosine_similarity(x, x.flip(1), dim=1)
z = torch.randn_like(x) + torch.full_like(x, 2.0)
"""),
    Habit("gradient clipping", NET + """
F.cross_entropy(model(images), labels).backward()
total = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
torch.nn.utils.clip_grad_value_(model.parameters(), clip_value=0.5)
"""),
    # habits that cannot work here: they must say what to do instead
    Habit("moving to a GPU", "import torch\nx = torch.randn(2).to('cuda')",
          fails=r"device 'cuda' is not available: convolve computes with NumPy on the CPU only\. Use 'cpu'"),
    Habit("model.cuda()", "import torch\nm = torch.nn.Linear(2, 2).cuda()",
          fails=r"device 'cuda' is not available.*Use 'cpu'"),
    Habit("bfloat16", "import torch\nx = torch.randn(2, 2).to(torch.bfloat16)",
          fails=r"has no attribute 'bfloat16': NumPy has no bfloat16; use convolve.float32"),
    Habit("torch.compile", "import torch\nmodel = torch.compile(torch.nn.Linear(2, 2))",
          fails=r"has no attribute 'compile': there is no graph compiler; call the model directly"),
]
