"""A small autograd demo: fit y = 3x - 2 with a hand-written linear model and SGD steps."""
import cengine as ce


def main():
    ce.show_config()
    ce.manual_seed(0)
    x = ce.linspace(-1, 1, 64).unsqueeze(1)
    y = 3 * x - 2 + 0.05 * ce.randn(64, 1)
    w = ce.zeros(1, requires_grad=True)
    b = ce.zeros(1, requires_grad=True)
    for step in range(200):
        loss = ((x * w + b - y) ** 2).mean()
        loss.backward()
        with ce.no_grad():
            w -= 0.5 * w.grad
            b -= 0.5 * b.grad
        w.grad = None
        b.grad = None
        if step % 50 == 0 or step == 199:
            print("step %3d  loss %.5f  w %.3f  b %.3f" % (step, loss.item(), w.item(), b.item()))


if __name__ == "__main__":
    main()
