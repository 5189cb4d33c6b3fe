"""Can the utterance Q-Former alone (no LLM) learn the benchmark's labels from the cached features?

    python benchmarks/probe_qformer_supervised.py [all|whisper|prosody]    (env: EP epochs, LR, T threads)

cpu-default sizes (K=8, d=256, 2 blocks), the target speaker's utterance windows, mean over queries, mean+max over
windows, one logistic head per label (BCE). Prints per-label validation accuracy and exact label-set accuracy per
epoch. Expects bench_data/n400 and its runs/features cache."""
import json, glob, os, sys, time, torch, numpy as np
from acoustemo.features.cache import load_features
from acoustemo.data.windows import frame_range
from acoustemo.model.qformer import QFormer, pad_windows
torch.manual_seed(0); torch.set_num_threads(int(os.environ.get("T", "2")))
files = {os.path.basename(f).split('.')[0]: f for f in glob.glob('bench_data/n400/runs/features/*.safetensors')}
LABELS = ["sad","excited","anxious","angry","surprised"]
sl = {"all": slice(None), "whisper": slice(0,512), "prosody": slice(512,None)}[sys.argv[1] if len(sys.argv)>1 else "all"]
def load(split):
    out = []
    for line in open(f'bench_data/n400/{split}.jsonl'):
        c = json.loads(line); f = load_features(files[c['id']]); x = torch.from_numpy(np.asarray(f.data)).float()[:, sl]
        ws = []
        for u in c['utterances']:
            if u['speaker'] != c['target_speaker']: continue
            a, b = frame_range(u['start'], u['end'], f.frame_rate_hz, len(x)); ws.append(x[a:b])
        out.append((ws, torch.tensor([float(l in c['labels']) for l in LABELS])))
    return out
tr, va = load('train'), load('val')
D = tr[0][0][0].shape[1]
allf = torch.cat([w for ws, _ in tr for w in ws])
streams = [("whisper", 512), ("prosody", D - 512)] if D > 512 else [("x", D)]  # the default stack
qf = QFormer(streams, 8, 256, 2, 4, 1024, 512, 0.1)
qf.input.set_feature_stats(allf.mean(0), allf.std(0))
head = torch.nn.Linear(512, len(LABELS))
opt = torch.optim.AdamW(list(qf.parameters()) + list(head.parameters()), lr=float(os.environ.get("LR", "1e-3")))
def fwd(batch):
    wins = [w for ws, _ in batch for w in ws]; n = [len(ws) for ws, _ in batch]
    x, m = pad_windows(wins); q = qf(x, m).mean(1)  # (W, d)
    feats = []; i = 0
    for k in n: feats.append(torch.cat([q[i:i+k].mean(0), q[i:i+k].max(0).values])); i += k
    return head(torch.stack(feats))
def evaluate(data):
    qf.eval(); 
    with torch.no_grad(): P = torch.cat([fwd(data[i:i+32]) for i in range(0, len(data), 32)]) > 0
    qf.train(); Y = torch.stack([y for _, y in data]).bool()
    return dict(zip(LABELS, (P == Y).float().mean(0).numpy().round(2))), float((P == Y).all(1).float().mean())
print("base rates", dict(zip(LABELS, torch.stack([y for _, y in va]).mean(0).numpy().round(2))))
t0 = time.time()
for ep in range(int(os.environ.get("EP", "15"))):
    perm = torch.randperm(len(tr)).tolist()
    for i in range(0, len(tr), 8):
        b = [tr[j] for j in perm[i:i+8]]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(fwd(b), torch.stack([y for _, y in b]))
        opt.zero_grad(); loss.backward(); opt.step()
    print(ep, round(loss.item(), 3), evaluate(va), f"{time.time()-t0:.0f}s", flush=True)
