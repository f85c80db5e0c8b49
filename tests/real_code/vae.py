"""The official variational-autoencoder example's model and loop: fc encoder to mu/logvar, the
reparameterisation trick with randn_like, a sigmoid decoder, binary_cross_entropy with
reduction='sum' plus the KL term, Adam, a no_grad test pass with torch.cat of originals and
reconstructions and sampling from the prior. Data: generated blobs in [0, 1] instead of MNIST."""
import argparse

import torch
import torch.utils.data
from torch import nn, optim
from torch.nn import functional as F

D = 64  # 8x8 images instead of 28x28


class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()
        self.fc1 = nn.Linear(D, 48)
        self.fc21 = nn.Linear(48, 4)
        self.fc22 = nn.Linear(48, 4)
        self.fc3 = nn.Linear(4, 48)
        self.fc4 = nn.Linear(48, D)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, D))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, D), reduction='sum')
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


def make_data(n, g):
    yy, xx = torch.meshgrid(torch.arange(8.), torch.arange(8.), indexing='ij')
    cy = torch.rand(n, 1, 1, generator=g) * 7
    cx = torch.rand(n, 1, 1, generator=g) * 7
    img = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)
    return img.unsqueeze(1).clamp(0, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description='VAE MNIST Example')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--epochs', type=int, default=6)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--log-interval', type=int, default=4)
    args = parser.parse_args([])
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kwargs = {'num_workers': 1, 'pin_memory': True} if device.type == "cuda" else {}
    g = torch.Generator().manual_seed(0)
    train_set = torch.utils.data.TensorDataset(make_data(256, g), torch.zeros(256))
    test_set = torch.utils.data.TensorDataset(make_data(64, g), torch.zeros(64))
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                                               **kwargs)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=args.batch_size, shuffle=False,
                                              **kwargs)
    model = VAE().to(device)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    log = []

    def train(epoch):
        model.train()
        train_loss = 0
        for batch_idx, (data, _) in enumerate(train_loader):
            data = data.to(device)
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = loss_function(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
            if batch_idx % args.log_interval == 0:
                log.append('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                    epoch, batch_idx * len(data), len(train_loader.dataset),
                    100. * batch_idx / len(train_loader), loss.item() / len(data)))
        return train_loss / len(train_loader.dataset)

    def test(epoch):
        model.eval()
        test_loss = 0
        comparison = None
        with torch.no_grad():
            for i, (data, _) in enumerate(test_loader):
                data = data.to(device)
                recon_batch, mu, logvar = model(data)
                test_loss += loss_function(recon_batch, data, mu, logvar).item()
                if i == 0:
                    n = min(data.size(0), 8)
                    comparison = torch.cat([data[:n],
                                            recon_batch.view(args.batch_size, 1, 8, 8)[:n]])
        test_loss /= len(test_loader.dataset)
        return test_loss, comparison

    train_losses, test_losses = [], []
    for epoch in range(1, args.epochs + 1):
        train_losses.append(train(epoch))
        tl, comparison = test(epoch)
        test_losses.append(tl)
        with torch.no_grad():
            sample = torch.randn(16, 4).to(device)
            sample = model.decode(sample).cpu()
    return dict(train=train_losses, test=test_losses, comparison=tuple(comparison.shape),
                sample=(tuple(sample.view(16, 1, 8, 8).shape), str(sample.dtype),
                        float(sample.min()), float(sample.max())), log=log)


if __name__ == "__main__":
    print(main())
