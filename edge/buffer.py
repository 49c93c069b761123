# The bounded offline queue: samples wait here until the broker has them.
# When it is full the oldest sample goes and is counted, so the server learns
# how much was lost (as mqtt_as does with its queue).


class SampleBuffer:
    def __init__(self, capacity=2000):
        self.capacity = capacity
        self.items = []  # (t_ms, {metric: value}, quality, hist)
        self.dropped = 0  # dropped and not yet reported

    def __len__(self):
        return len(self.items)

    def append(self, sample):
        if len(self.items) >= self.capacity:
            self.items.pop(0)
            self.dropped += 1
        self.items.append(sample)

    def take(self, n):
        """Remove and return the oldest run of up to n samples sharing one hist flag."""
        if not self.items:
            return []
        hist = self.items[0][3]
        out = []
        for sample in self.items:
            if len(out) >= n or sample[3] != hist:
                break
            out.append(sample)
        del self.items[: len(out)]
        return out
