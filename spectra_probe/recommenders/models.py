r"""SASRec and GRU4Rec, compact and faithful to their papers (torch).

Both read a batch of item-index sequences (0 = padding) and return one hidden state per position; the score
of item i after position t is the dot product of that state with the item's output embedding (plus a bias in
GRU4Rec). Both are trained on **all positions at once** (:mod:`.training`): position t predicts item t+1.

SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018, Sec. III)
    input :math:`\hat E_t = M_{s_t}\sqrt d + P_t` (item embedding scaled by :math:`\sqrt d` as in the authors'
    code, plus a *learned* positional embedding), dropout, padding rows zeroed; ``blocks`` self-attention blocks,
    each :math:`S = \mathrm{LN}(X) + \mathrm{MHA}(\mathrm{LN}(X), X, X)` with a causal mask (t attends to
    :math:`\le t`), then :math:`F = S' + \mathrm{FFN}(S')`, :math:`S' = \mathrm{LN}(S)`,
    :math:`\mathrm{FFN} = W_2\,\mathrm{drop}(\mathrm{ReLU}(W_1 x))` with dropout (the authors' point-wise
    convolutions), padding rows zeroed after each block; a final layer norm. Item embeddings are shared
    between input and output (:math:`r_{i,t} = F_t \cdot M_i`); sequences are left-padded so the most
    recent item sits at the last position. Loss (Eq. 10): binary cross-entropy with one sampled negative
    per position, :math:`-\log\sigma(r_{o_t,t}) - \log(1 - \sigma(r_{j,t}))`, j never in the user's sequence.

GRU4Rec (Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks", ICLR 2016; Hidasi &
Karatzoglou, "Recurrent Neural Networks with Top-k Gains for Session-based Recommendations", CIKM 2018)
    item embedding, dropout, a GRU layer (``layers`` stacked), dropout, and a separate output embedding with
    a per-item bias: :math:`r_{i,t} = h_t \cdot W_i + b_i`. Loss: cross-entropy of the softmax over the *whole*
    catalogue at every position (the 2018 paper's cross-entropy loss with every item as a negative, which a
    small catalogue such as MovieLens allows; the paper samples negatives only for speed on large catalogues).
    Sequences are right-padded so padding never feeds the recurrence before a real item; the score for the
    next item reads the state at the last real position. Training unrolls each user's sequence (its last
    ``max_len + 1`` items) with full back-propagation through time instead of the paper's session-parallel
    mini-batches, which carry the state across mini-batches and back-propagate one step; the loss per position
    is the same.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class SASRec(nn.Module):
    """Self-attentive sequential recommender (module docstring); ``forward`` returns (B, L, d) states."""

    padding = "left"

    def __init__(self, n_items: int, dim: int = 50, blocks: int = 2, heads: int = 1, dropout: float = 0.2,
                 max_len: int = 200):
        super().__init__()
        self.n_items, self.dim, self.max_len = n_items, dim, max_len
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.emb_dropout = nn.Dropout(dropout)
        self.attn_norms = nn.ModuleList(nn.LayerNorm(dim, eps=1e-8) for _ in range(blocks))
        self.attns = nn.ModuleList(nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
                                   for _ in range(blocks))
        self.ffn_norms = nn.ModuleList(nn.LayerNorm(dim, eps=1e-8) for _ in range(blocks))
        self.ffns = nn.ModuleList(nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout), nn.ReLU(),
                                                nn.Linear(dim, dim), nn.Dropout(dropout)) for _ in range(blocks))
        self.last_norm = nn.LayerNorm(dim, eps=1e-8)
        for name, weight in self.named_parameters():  # Xavier-normal matrices, as the authors' reference code
            if weight.dim() > 1:
                nn.init.xavier_normal_(weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        length = seqs.shape[1]
        x = self.item_emb(seqs) * math.sqrt(self.dim)
        x = x + self.pos_emb(torch.arange(self.max_len - length, self.max_len, device=seqs.device))
        keep = (seqs != 0).unsqueeze(-1)
        x = self.emb_dropout(x) * keep
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=seqs.device), diagonal=1)
        for norm, attn, ffn_norm, ffn in zip(self.attn_norms, self.attns, self.ffn_norms, self.ffns):
            q = norm(x)
            x = q + attn(q, x, x, attn_mask=causal, need_weights=False)[0]
            x = ffn_norm(x)
            x = (x + ffn(x)) * keep
        return self.last_norm(x)

    def score(self, states: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of ``items`` (..., c) from ``states`` (..., d): :math:`F_t \\cdot M_i`."""
        return (states.unsqueeze(-2) * self.item_emb(items)).sum(-1)


class GRU4Rec(nn.Module):
    """GRU next-item recommender (module docstring); ``forward`` returns (B, L, hidden) states."""

    padding = "right"

    def __init__(self, n_items: int, dim: int = 64, hidden: int = 100, layers: int = 1, dropout: float = 0.25):
        super().__init__()
        self.n_items = n_items
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.emb_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, hidden, num_layers=layers, batch_first=True)
        self.out_dropout = nn.Dropout(dropout)
        self.out_emb = nn.Embedding(n_items + 1, hidden)
        self.out_bias = nn.Embedding(n_items + 1, 1)
        # small initial scores (unit-variance embeddings would start the softmax far from uniform)
        nn.init.xavier_uniform_(self.out_emb.weight)
        nn.init.zeros_(self.out_bias.weight)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.emb_dropout(self.item_emb(seqs)))
        return self.out_dropout(states)

    def score(self, states: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (states.unsqueeze(-2) * self.out_emb(items)).sum(-1) + self.out_bias(items).squeeze(-1)

    def all_scores(self, states: torch.Tensor) -> torch.Tensor:
        """Scores of every item 1..n_items (column 0 is padding) for the full-softmax loss."""
        return states @ self.out_emb.weight.T + self.out_bias.weight.T
