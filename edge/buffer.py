# The bounded offline queue: samples wait here until the broker has them.
#
# Two tiers, oldest first: a spool file on flash (optional) holds the older
# samples, a RAM ring the newer ones. When the ring fills, its older half is
# spilled to the spool in one write (flash wears with every write, so few and
# large). When everything is full the oldest sample goes and is counted, so the
# server learns how much was lost (as mqtt_as does with its queue).
#
# A sample is (t_ms, {metric: value}, quality, hist). The spool is one JSON
# array per line; it survives a reboot and is replayed from its start (a
# sample may then be sent twice, which the server absorbs: same point, same
# timestamp, overwritten).

import json


class Spool:
    """Samples in a file of JSON lines, read from `offset`, `count` of them pending."""

    def __init__(self, path, capacity):
        self.path = path
        self.capacity = capacity
        self.offset = 0
        self.count = 0
        self.head_hist = None  # hist flag of the oldest pending sample, cached
        self.undo = None  # (offset, count) before the last take
        try:
            with open(path) as f:
                for line in f:
                    if line.strip():
                        self.count += 1
        except OSError:
            pass  # no spool yet

    def push(self, samples):
        """Append samples; returns how many of the oldest had to be dropped."""
        self.undo = None  # the offsets move: a put_back would now be wrong
        with open(self.path, "a") as f:
            for s in samples:
                f.write(json.dumps([s[0], s[1], s[2], s[3]]))
                f.write("\n")
        self.count += len(samples)
        excess = self.count - self.capacity
        if excess > 0:
            self._skip(excess)
            return excess
        return 0

    def _skip(self, n):
        with open(self.path) as f:
            f.seek(self.offset)
            for _ in range(n):
                f.readline()
            self.offset = f.tell()
        self.count -= n
        self.head_hist = None

    def first_hist(self):
        if self.head_hist is None and self.count:
            with open(self.path) as f:
                f.seek(self.offset)
                self.head_hist = json.loads(f.readline())[3]
        return self.head_hist

    def take(self, n):
        """Remove and return up to n of the oldest samples sharing one hist flag.

        Until the next take, put_back() undoes it (the lines are still in the file)."""
        out = []
        hist = self.first_hist()
        self.undo = (self.offset, self.count)
        with open(self.path) as f:
            f.seek(self.offset)
            while len(out) < n and len(out) < self.count:
                position = f.tell()
                row = json.loads(f.readline())
                if row[3] != hist:
                    f.seek(position)
                    break
                out.append((row[0], row[1], row[2], row[3]))
            self.offset = f.tell()
        self.count -= len(out)
        self.head_hist = None
        if not self.count:
            self.undo = None  # nothing left: the file is truncated, the samples live in the caller only
            self.clear()
        return out

    def put_back(self):
        """Undo the last take (the caller could not send what it took); False if it cannot."""
        if not self.undo:
            return False
        self.offset, self.count = self.undo
        self.undo = None
        self.head_hist = None
        return True

    def clear(self):
        with open(self.path, "w"):
            pass  # truncate: an empty spool costs no flash
        self.offset = 0
        self.count = 0
        self.head_hist = None


class SampleBuffer:
    def __init__(self, capacity=2000, spool_path=None, spool_capacity=20000):
        self.capacity = capacity  # samples in RAM
        self.items = []  # the RAM ring, oldest first
        self.spool = Spool(spool_path, spool_capacity) if spool_path else None
        self.dropped = 0  # dropped and not yet reported
        self.taken_from_spool = False

    def __len__(self):
        return len(self.items) + (self.spool.count if self.spool else 0)

    def append(self, sample):
        if len(self.items) >= self.capacity:
            if self.spool is not None:
                half = max(1, self.capacity // 2)
                self.dropped += self.spool.push(self.items[:half])
                del self.items[:half]
            else:
                self.items.pop(0)
                self.dropped += 1
        self.items.append(sample)

    def head_hist(self):
        """The hist flag of the oldest sample (None when empty)."""
        if self.spool is not None and self.spool.count:
            return self.spool.first_hist()
        return self.items[0][3] if self.items else None

    def take(self, n):
        """Remove and return the oldest run of up to n samples sharing one hist flag."""
        self.taken_from_spool = False
        if self.spool is not None and self.spool.count:
            self.taken_from_spool = True
            return self.spool.take(n)  # the next call continues with RAM
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

    def put_back(self, samples):
        """Return samples from the last take to the head of the queue, oldest first.

        The agent does this when it could not encode them (no memory): nothing is lost."""
        if self.taken_from_spool and self.spool.put_back():
            return
        self.items[0:0] = samples
