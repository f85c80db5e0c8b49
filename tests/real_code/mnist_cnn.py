"""The official MNIST convolutional-network example's structure (argparse options, Net with
Conv2d / Dropout / max_pool2d / log_softmax, train and test loops with nll_loss, StepLR,
saving the state_dict), on generated 28x28 "digits" instead of a download."""
import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, device, train_loader, optimizer, epoch, log):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            log.append('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
            if args.dry_run:
                break


def test(model, device, test_loader, log):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)
    log.append('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(test_loader.dataset),
        100. * correct / len(test_loader.dataset)))
    return test_loss, correct / len(test_loader.dataset)


def fake_digits(n, rng, templates):
    y = rng.integers(0, 10, n)
    x = templates[y] + 0.3 * rng.standard_normal((n, 1, 28, 28))
    x = (x - 0.1307) / 0.3081
    return torch.tensor(x, dtype=torch.float32), torch.from_numpy(y)


def main(argv=None):
    argv = dict(argv or {})
    parser = argparse.ArgumentParser(description='PyTorch MNIST Example')
    parser.add_argument('--batch-size', type=int, default=32, metavar='N')
    parser.add_argument('--test-batch-size', type=int, default=64, metavar='N')
    parser.add_argument('--epochs', type=int, default=3, metavar='N')
    parser.add_argument('--lr', type=float, default=1.0, metavar='LR')
    parser.add_argument('--gamma', type=float, default=0.7, metavar='M')
    parser.add_argument('--optimizer', default='Adadelta')
    parser.add_argument('--no-cuda', action='store_true', default=False)
    parser.add_argument('--no-mps', action='store_true', default=False)
    parser.add_argument('--dry-run', action='store_true', default=False)
    parser.add_argument('--seed', type=int, default=1, metavar='S')
    parser.add_argument('--log-interval', type=int, default=2, metavar='N')
    parser.add_argument('--save-model', action='store_true', default=False)
    parser.add_argument('--out', default='mnist_cnn.pt')
    cli = ['--optimizer', argv.get('optimizer', 'Adadelta'), '--out', argv.get('out', 'mnist_cnn.pt'),
           '--save-model']
    if argv.get('optimizer') == 'SGD':
        cli += ['--lr', '0.1']
    args = parser.parse_args(cli)
    use_cuda = not args.no_cuda and torch.cuda.is_available()
    use_mps = not args.no_mps and torch.backends.mps.is_available()

    torch.manual_seed(args.seed)

    if use_cuda:
        device = torch.device("cuda")
    elif use_mps:
        device = torch.device("mps")
    else:
        device = torch.device("cpu")

    train_kwargs = {'batch_size': args.batch_size}
    test_kwargs = {'batch_size': args.test_batch_size}
    if use_cuda:
        cuda_kwargs = {'num_workers': 1, 'pin_memory': True, 'shuffle': True}
        train_kwargs.update(cuda_kwargs)
        test_kwargs.update(cuda_kwargs)
    else:
        train_kwargs.update({'shuffle': True})

    rng = np.random.default_rng(0)
    templates = (rng.random((10, 1, 28, 28)) > 0.7).astype(np.float64)
    dataset1 = TensorDataset(*fake_digits(128, rng, templates))
    dataset2 = TensorDataset(*fake_digits(64, rng, templates))
    train_loader = torch.utils.data.DataLoader(dataset1, **train_kwargs)
    test_loader = DataLoader(dataset2, **test_kwargs)

    model = Net().to(device)
    optimizer = getattr(optim, args.optimizer)(model.parameters(), lr=args.lr)

    log = []
    results = [test(model, device, test_loader, log)]
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    lrs = []
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch, log)
        results.append(test(model, device, test_loader, log))
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])

    if args.save_model:
        torch.save(model.state_dict(), args.out)
    model2 = Net()
    model2.load_state_dict(torch.load(args.out, weights_only=True))
    model2.eval()
    x = dataset2[0][0].unsqueeze(0)
    same = torch.equal(model2(x), model.eval()(x))
    return dict(results=results, lrs=lrs, log=log, same_after_load=same,
                out_shape=tuple(model(x).shape), out_dtype=str(model(x).dtype))


if __name__ == '__main__':
    print(main())
