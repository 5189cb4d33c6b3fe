"""How much do the acoustic tokens vary across clips? (std across clips vs mean magnitude), and the per-token
loss on the emotion words. Usage: python benchmarks/diag_token_variation.py  (edit the model path at the top)"""
import json, torch
from acoustemo.infer import load_predictor
from acoustemo.data.manifest import read_manifest
from acoustemo.data.dataset import AcoustEmoDataset, collate
torch.set_num_threads(1)
pr = load_predictor('bench_data/lead/cmvn-e1/best', cache_dir='bench_data/n400/runs/features')
m = pr.model
clips = read_manifest('bench_data/n400/train.jsonl')[:12]
ds = AcoustEmoDataset(clips, pr.load_acoustic, pr.load_visual, m.tokenizer, m.cfg, with_answers=True)
b = collate([ds[i] for i in range(len(clips))], m.tokenizer.pad_token_id)
with torch.no_grad():
    g = m.global_tokens(b['audio'], b['audio_mask'], b.get('global_tokens')) if hasattr(m,'global_tokens') else None
    print('global tok per clip std across clips:', g.view(len(clips), -1, g.shape[-1]).float().std(0).mean().item(), 'mean abs', g.float().abs().mean().item())
    out = m(**{k: v for k, v in b.items() if k != 'ids'})
    print('loss', out.loss.item())
    # per-token loss on the emotion words
    logits = out.logits[:, :-1].float(); labels = b['labels'][:, 1:]
    lp = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction='none', ignore_index=-100).view(labels.shape)
    for i in range(4):
        idx = (labels[i] != -100).nonzero().flatten()[:8]
        toks = m.tokenizer.convert_ids_to_tokens(labels[i][idx].tolist())
        print(clips[i].labels, [(t, round(lp[i, j].item(), 2)) for t, j in zip(toks, idx.tolist())])
with torch.no_grad():
    q = m.utt_qformer.input(b['windows'].float())
    print('input-proj std across windows', q.mean(1).std(0).mean().item(), 'abs', q.abs().mean().item())
    u = m.utterance_tokens(b['windows'], b['window_mask'], b.get('window_tokens'), return_attention=False) if True else None
    u = u[0] if isinstance(u, tuple) else u
    print('utt tokens std across windows', u.view(b['windows'].shape[0], -1, u.shape[-1]).float().std(0).mean().item(), 'abs', u.float().abs().mean().item())
