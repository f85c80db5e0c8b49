"""The beginner quickstart and its tensor / autograd tutorials: tensor creation and numpy bridge,
a custom Dataset, random_split, DataLoader(shuffle, drop_last), a Flatten + Sequential network,
train/test loops with model.train()/eval(), accuracy as
(pred.argmax(1) == y).type(torch.float).sum().item(), state_dict save and load, prediction
with a class list indexed by a tensor."""
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, DataLoader, random_split, TensorDataset


def tensor_tutorial():
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    np_array = np.array(data)
    x_np = torch.from_numpy(np_array)
    x_ones = torch.ones_like(x_data)
    x_rand = torch.rand_like(x_data, dtype=torch.float)
    shape = (2, 3,)
    rand_tensor = torch.rand(shape)
    ones_tensor = torch.ones(shape)
    zeros_tensor = torch.zeros(shape)
    tensor = torch.rand(3, 4)
    info = (tuple(tensor.shape), str(tensor.dtype), str(tensor.device))
    if torch.accelerator.is_available():
        tensor = tensor.to(torch.accelerator.current_accelerator())
    tensor = torch.ones(4, 4)
    first_row, first_col, last_col = tensor[0], tensor[:, 0], tensor[..., -1]
    tensor[:, 1] = 0
    t1 = torch.cat([tensor, tensor, tensor], dim=1)
    y1 = tensor @ tensor.T
    y2 = tensor.matmul(tensor.T)
    y3 = torch.rand_like(y1)
    torch.matmul(tensor, tensor.T, out=y3)
    z1 = tensor * tensor
    z2 = tensor.mul(tensor)
    z3 = torch.rand_like(tensor)
    torch.mul(tensor, tensor, out=z3)
    agg = tensor.sum()
    agg_item = agg.item()
    tensor.add_(5)
    t = torch.ones(5)
    n = t.numpy()
    t.add_(1)
    shared = float(n[0])
    n2 = np.ones(5)
    t2 = torch.from_numpy(n2)
    np.add(n2, 1, out=n2)
    return dict(info=info, t1=tuple(t1.shape), y_equal=bool(torch.equal(y1, y3) and torch.equal(y1, y2)),
                z_equal=bool(torch.equal(z1, z3) and torch.equal(z1, z2)), agg_item=agg_item,
                agg_type=type(agg_item).__name__, shared=shared, t2=t2.tolist(),
                tensor00=tensor[0, 0].item(), x_np_dtype=str(x_np.dtype),
                x_rand_dtype=str(x_rand.dtype), x_ones=x_ones.tolist(),
                first=(first_row.tolist(), first_col.tolist(), last_col.tolist()),
                sizes=(tuple(rand_tensor.shape), ones_tensor.sum().item(), zeros_tensor.sum().item()))


def autograd_tutorial():
    x = torch.ones(5)
    y = torch.zeros(3)
    w = torch.randn(5, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    z = torch.matmul(x, w) + b
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    grad_fn_name = type(z.grad_fn).__name__
    loss.backward()
    gw = w.grad.clone()
    with torch.no_grad():
        z = torch.matmul(x, w) + b
    no_grad_req = z.requires_grad
    z_det = (torch.matmul(x, w) + b).detach()
    inp = torch.eye(4, 5, requires_grad=True)
    out = (inp + 1).pow(2).t()
    out.backward(torch.ones_like(out), retain_graph=True)
    first = inp.grad.clone()
    out.backward(torch.ones_like(out), retain_graph=True)
    second = inp.grad.clone()
    inp.grad.zero_()
    out.backward(torch.ones_like(out), retain_graph=True)
    third = inp.grad.clone()
    sig = torch.sigmoid(torch.matmul(x, w) + b)
    expect_gw = torch.outer(x, (sig - y) / 3)
    return dict(gw_ok=bool(torch.allclose(gw, expect_gw, atol=1e-6)), no_grad_req=no_grad_req,
                det_req=z_det.requires_grad, first=first.tolist(), second=second.tolist(),
                third=third.tolist(), has_grad_fn=grad_fn_name is not None)


class NumbersDataset(Dataset):
    """A custom Dataset: points in 8 dimensions, 4 classes by nearest centre."""

    def __init__(self, n, seed, transform=None, target_transform=None):
        g = torch.Generator().manual_seed(seed)
        self.centres = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)) * 2
        self.labels = torch.randint(0, 4, (n,), generator=g)
        self.points = self.centres[self.labels] + torch.randn(n, 8, generator=g)
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        x = self.points[idx].view(2, 4)
        y = self.labels[idx].item()
        if self.transform:
            x = self.transform(x)
        if self.target_transform:
            y = self.target_transform(y)
        return x, y


class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(2 * 4, 32),
            nn.ReLU(),
            nn.Linear(32, 32),
            nn.ReLU(),
            nn.Linear(32, 4)
        )

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits


def train(dataloader, model, loss_fn, optimizer, device, log):
    size = len(dataloader.dataset)
    model.train()
    for batch, (X, y) in enumerate(dataloader):
        X, y = X.to(device), y.to(device)
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if batch % 5 == 0:
            loss, current = loss.item(), (batch + 1) * len(X)
            log.append(f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]")


def test(dataloader, model, loss_fn, device):
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    model.eval()
    test_loss, correct = 0, 0
    with torch.no_grad():
        for X, y in dataloader:
            X, y = X.to(device), y.to(device)
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    test_loss /= num_batches
    correct /= size
    return test_loss, correct


def main(argv=None):
    path = (argv or {}).get("path", "model.pth")
    torch.manual_seed(0)
    out = dict(tensors=tensor_tutorial(), autograd=autograd_tutorial())
    device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"
    full = NumbersDataset(500, seed=1)
    training_data, test_data = random_split(full, [0.8, 0.2], generator=torch.Generator().manual_seed(42))
    batch_size = 16
    train_dataloader = DataLoader(training_data, batch_size=batch_size, shuffle=True, drop_last=True)
    test_dataloader = DataLoader(test_data, batch_size=batch_size)
    X, y = next(iter(test_dataloader))
    out["batch"] = (tuple(X.shape), str(X.dtype), tuple(y.shape), str(y.dtype))
    model = NeuralNetwork().to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-1)
    log = []
    results = [test(test_dataloader, model, loss_fn, device)]
    epochs = 4
    for t in range(epochs):
        train(train_dataloader, model, loss_fn, optimizer, device, log)
        results.append(test(test_dataloader, model, loss_fn, device))
    torch.save(model.state_dict(), path)
    model = NeuralNetwork().to(device)
    model.load_state_dict(torch.load(path, weights_only=True))
    classes = ["north", "east", "south", "west"]
    model.eval()
    x, y = test_data[0][0], test_data[0][1]
    with torch.no_grad():
        x = x.to(device)
        pred = model(x.unsqueeze(0))
        predicted, actual = classes[pred[0].argmax(0)], classes[y]
    out.update(results=results, log=log, predicted=predicted, actual=actual,
               n_train=len(training_data), n_test=len(test_data),
               n_batches=(len(train_dataloader), len(test_dataloader)),
               reloaded=test(test_dataloader, model, loss_fn, device))

    # the same data through TensorDataset, as in the "build the model" tutorial
    tds = TensorDataset(full.points, full.labels)
    xs, ys = next(iter(DataLoader(tds, batch_size=7, shuffle=False)))
    out["tds"] = (tuple(xs.shape), ys.tolist() == full.labels[:7].tolist())
    return out


if __name__ == "__main__":
    print(main())
