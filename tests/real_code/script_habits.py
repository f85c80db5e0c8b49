"""What training scripts do around the model: print versions and devices, seed everything,
set cudnn flags and print options, count parameters, torch.jit.script a helper, checkpoint a
dict with model/optimizer state and reload it with map_location, early stopping with
copy.deepcopy(state_dict()), schedulers (CosineAnnealingLR, ReduceLROnPlateau), Subset /
ConcatDataset / WeightedRandomSampler, parameters_to_vector, torch.testing.assert_close,
inference_mode, and a torch.distributions.Categorical policy-gradient step."""
import copy
import os
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, Subset, TensorDataset, WeightedRandomSampler


def seed_everything(seed):
    random.seed(seed)
    os.environ['PYTHONHASHSEED'] = str(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


@torch.jit.script
def fused_scale_shift(x: torch.Tensor, scale: float, shift: float) -> torch.Tensor:
    return x * scale + shift


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main(argv=None):
    ckpt_path = (argv or {}).get('ckpt', 'checkpoint.pt')
    info = dict(version=str(torch.__version__), cuda_version=torch.version.cuda,
                cuda=torch.cuda.is_available(), n_gpu=torch.cuda.device_count(),
                mps=torch.backends.mps.is_available())
    seed_everything(42)
    torch.set_printoptions(precision=3, sci_mode=False)
    text = str(torch.tensor([1.23456, 1e-5]))
    torch.set_printoptions(profile="default")
    torch.set_num_threads(torch.get_num_threads())
    info['interop'] = torch.get_num_interop_threads() >= 1
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

    x = torch.randn(240, 6)
    w_true = torch.randn(6, 3)
    y = (x @ w_true).argmax(dim=1)
    full = TensorDataset(x, y)
    train_set = Subset(full, range(0, 160))
    val_set = Subset(full, list(range(160, 240)))
    both = ConcatDataset([train_set, val_set])
    counts = torch.bincount(y[:160], minlength=3).float()
    weights = (1.0 / counts)[y[:160]]
    sampler = WeightedRandomSampler(weights, num_samples=len(train_set), replacement=True)
    train_loader = DataLoader(train_set, batch_size=16, sampler=sampler)
    val_loader = DataLoader(val_set, batch_size=40)

    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, 'min', patience=2, factor=0.5)
    info['n_params'] = count_parameters(model)
    vec = nn.utils.parameters_to_vector(model.parameters())
    info['vec'] = tuple(vec.shape)

    best_loss, best_state, bad_epochs, history = float('inf'), None, 0, []
    for epoch in range(12):
        model.train()
        for xb, yb in train_loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        val_loss, correct = 0.0, 0
        with torch.inference_mode():
            for xb, yb in val_loader:
                out = model(xb)
                val_loss += F.cross_entropy(out, yb, reduction='sum').item()
                correct += (out.argmax(1) == yb).sum().item()
        val_loss /= len(val_set)
        plateau.step(val_loss)
        history.append((val_loss, correct / len(val_set), optimizer.param_groups[0]['lr']))
        if val_loss < best_loss:
            best_loss, bad_epochs = val_loss, 0
            best_state = copy.deepcopy(model.state_dict())
            torch.save({'epoch': epoch, 'model_state_dict': model.state_dict(),
                        'optimizer_state_dict': optimizer.state_dict(), 'loss': val_loss},
                       ckpt_path)
        else:
            bad_epochs += 1
            if bad_epochs >= 4:
                break

    checkpoint = torch.load(ckpt_path, map_location=torch.device('cpu'))
    model2 = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
    model2.load_state_dict(checkpoint['model_state_dict'])
    optimizer2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
    optimizer2.load_state_dict(checkpoint['optimizer_state_dict'])
    model.load_state_dict(best_state)
    model.eval()
    model2.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model2(x))
    torch.testing.assert_close(fused_scale_shift(torch.ones(2), 2.0, 1.0), torch.full((2,), 3.0))
    try:
        torch.testing.assert_close(torch.ones(2), torch.zeros(2))
        close_raises = False
    except AssertionError:
        close_raises = True

    # a REINFORCE step with a Categorical policy
    policy = nn.Linear(4, 2)
    popt = torch.optim.SGD(policy.parameters(), lr=0.1)
    state = torch.randn(8, 4)
    probs = F.softmax(policy(state), dim=-1)
    m = torch.distributions.Categorical(probs)
    action = m.sample()
    returns = (action == 1).float() * 2 - 1
    loss = -(m.log_prob(action) * returns).mean()
    popt.zero_grad()
    loss.backward()
    popt.step()
    m2 = torch.distributions.Categorical(logits=policy(state))
    ent = m2.entropy()

    return dict(info=info, text=text, history=history, epoch=checkpoint['epoch'],
                best=best_loss, ckpt_loss=checkpoint['loss'], n_both=len(both),
                close_raises=close_raises, action=(tuple(action.shape), str(action.dtype)),
                entropy=(tuple(ent.shape), ent.max().item()),
                policy_grad=policy.weight.grad is not None)


if __name__ == '__main__':
    print(main())
