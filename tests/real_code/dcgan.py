"""The DCGAN example's generator and discriminator at a tiny size (16x16 images): ConvTranspose2d
/ BatchNorm2d / ReLU(True) / Tanh generator, Conv2d / LeakyReLU(0.2, inplace=True) / Sigmoid
discriminator, weights_init applied by class name, BCELoss with torch.full labels, fill_,
fake.detach(), two Adam optimizers with betas, fixed noise."""
import random

import torch
import torch.nn as nn
import torch.nn.parallel
import torch.optim as optim
import torch.utils.data

nc, nz, ngf, ndf = 1, 8, 8, 8


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, ngpu):
        super(Generator, self).__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False),
            nn.Tanh()
        )

    def forward(self, input):
        if input.is_cuda and self.ngpu > 1:
            output = nn.parallel.data_parallel(self.main, input, range(self.ngpu))
        else:
            output = self.main(input)
        return output


class Discriminator(nn.Module):
    def __init__(self, ngpu):
        super(Discriminator, self).__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
            nn.Sigmoid()
        )

    def forward(self, input):
        if input.is_cuda and self.ngpu > 1:
            output = nn.parallel.data_parallel(self.main, input, range(self.ngpu))
        else:
            output = self.main(input)
        return output.view(-1, 1).squeeze(1)


def main(argv=None):
    manualSeed = 999
    random.seed(manualSeed)
    torch.manual_seed(manualSeed)
    torch.use_deterministic_algorithms(True)
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    ngpu = 1
    # "real" images: bright vertical bars in [-1, 1]
    g = torch.Generator().manual_seed(1)
    pos = torch.randint(2, 14, (128,), generator=g)
    cols = torch.arange(16).view(1, 1, 1, 16)
    real = (torch.abs(cols - pos.view(-1, 1, 1, 1)) <= 1).float().expand(-1, 1, 16, 16) * 2 - 1
    dataloader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(real), batch_size=16,
                                             shuffle=True, drop_last=True)

    netG = Generator(ngpu).to(device)
    netG.apply(weights_init)
    netD = Discriminator(ngpu).to(device)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    fixed_noise = torch.randn(16, nz, 1, 1, device=device)
    real_label = 1.
    fake_label = 0.
    optimizerD = optim.Adam(netD.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=2e-3, betas=(0.5, 0.999))

    G_losses, D_losses, D_x_hist = [], [], []
    for epoch in range(4):
        for i, data in enumerate(dataloader, 0):
            netD.zero_grad()
            real_cpu = data[0].to(device)
            b_size = real_cpu.size(0)
            label = torch.full((b_size,), real_label, dtype=real_cpu.dtype, device=device)
            output = netD(real_cpu).view(-1)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()

            noise = torch.randn(b_size, nz, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach()).view(-1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()

            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake).view(-1)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()
            G_losses.append(errG.item())
            D_losses.append(errD.item())
            D_x_hist.append((D_x, D_G_z1, D_G_z2))

    with torch.no_grad():
        fake = netG(fixed_noise).detach().cpu()
    running = {k: v.shape for k, v in netD.state_dict().items() if 'running' in k or 'num_batches' in k}
    return dict(G=G_losses, D=D_losses, Dx=D_x_hist, fake=(tuple(fake.shape), str(fake.dtype),
                float(fake.min()), float(fake.max())),
                n_params=(sum(p.numel() for p in netG.parameters()),
                          sum(p.numel() for p in netD.parameters())),
                bn_keys=sorted((k, tuple(s)) for k, s in running.items()))


if __name__ == '__main__':
    print(main())
