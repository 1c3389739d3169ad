"""Randomly initialised MusicGen models built from configs, with no download: for tests and benchmarks.

They run the real code path (tokenizer, text encoder, audio prompt through EnCodec, decoder with
the delay pattern, EnCodec decoding) and make noise, not music. The tokenizer is a small Unigram
vocabulary built here (no tokenizer files exist offline); ``MUSICGEN_SMALL`` is the architecture of
facebook/musicgen-small (T5-base text encoder, 24-layer 1024-wide decoder over 4 codebooks of 2048,
32 kHz EnCodec at 50 frames per second), written out so its speed can be measured without weights.
"""

from __future__ import annotations

from typing import Any

from m2m.music.melody import ChromaSettings, MelodyProcessor
from m2m.music.transformers_backend import LoadedModel

_WORDS = ["a", "calm", "gentle", "soft", "slow", "fast", "epic", "intense", "sad", "happy", "dark", "bright", "piano", "strings", "drums", "guitar", "flute", "synth", "bass", "music", "melody", "with", "and", "the", "of", "in", "tempo", "bpm", "minor", "major", "orchestral", "ambient"]

TINY: dict[str, dict[str, Any]] = {
    "text_encoder": {"d_model": 16, "d_ff": 32, "d_kv": 8, "num_layers": 1, "num_heads": 2},
    "audio_encoder": {
        "sampling_rate": 32000, "audio_channels": 1, "hidden_size": 16, "num_filters": 4,
        "num_residual_layers": 1, "upsampling_ratios": [8, 5, 4, 4], "codebook_size": 64, "codebook_dim": 16,
        # 4 codebooks: bandwidth = codebooks * log2(codebook_size) * frame rate = 4 * 6 * 50 bit/s
        "target_bandwidths": [1.2], "num_lstm_layers": 1, "normalize": False, "use_causal_conv": False,
    },
    "decoder": {"vocab_size": 64, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                "ffn_dim": 32, "num_codebooks": 4, "max_position_embeddings": 2048},
}

# facebook/musicgen-small's config.json, as far as it shapes the network
MUSICGEN_SMALL: dict[str, dict[str, Any]] = {
    "text_encoder": {"d_model": 768, "d_ff": 3072, "d_kv": 64, "num_layers": 12, "num_heads": 12,
                     "relative_attention_num_buckets": 32, "feed_forward_proj": "relu", "vocab_size": 32128},
    "audio_encoder": {
        "sampling_rate": 32000, "audio_channels": 1, "hidden_size": 128, "num_filters": 64,
        "num_residual_layers": 1, "upsampling_ratios": [8, 5, 4, 4], "codebook_size": 2048,
        "codebook_dim": 128, "target_bandwidths": [2.2], "num_lstm_layers": 2, "normalize": False,
        "use_causal_conv": False, "kernel_size": 7, "last_kernel_size": 7, "residual_kernel_size": 3,
        "dilation_growth_rate": 2, "compress": 2, "trim_right_ratio": 1.0, "norm_type": "weight_norm",
        "pad_mode": "reflect", "use_conv_shortcut": False,
    },
    "decoder": {"vocab_size": 2048, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                "ffn_dim": 4096, "num_codebooks": 4, "max_position_embeddings": 2048, "activation_function": "gelu",
                "dropout": 0.1, "layerdrop": 0.0, "scale_embedding": False},
}


def offline_tokenizer(words: tuple[str, ...] = tuple(_WORDS)):
    """A T5 tokenizer over a small Unigram vocabulary built in memory: whole words, then single
    letters so any text tokenizes."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(f"▁{w}", -1.0 - i * 0.01) for i, w in enumerate(words)]
    vocab += [(c, -10.0) for c in "▁abcdefghijklmnopqrstuvwxyz0123456789,.-'"]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def random_musicgen(architecture: dict[str, dict[str, Any]] = TINY, seed: int = 0,
                    model_id: str = "random/musicgen-tiny", device: str = "cpu", melody: bool = False,
                    dtype: Any = None) -> LoadedModel:
    """A MusicGen (``melody``: a MusicGen-Melody, chroma-conditioned) with random weights and the given
    architecture, and its processor, ready for the engine. ``dtype``: e.g. ``torch.float16``."""
    import torch
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        GenerationConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
    )

    tokenizer = offline_tokenizer()
    text = dict(architecture["text_encoder"])
    text.setdefault("vocab_size", len(tokenizer))
    audio = EncodecConfig(**architecture["audio_encoder"])
    codes = architecture["decoder"]["vocab_size"]  # the pad/start token sits just past the codebook
    decoder_cls = MusicgenMelodyDecoderConfig if melody else MusicgenDecoderConfig
    decoder = decoder_cls(**architecture["decoder"], pad_token_id=codes, bos_token_id=codes,
                          decoder_start_token_id=codes)
    config_cls = MusicgenMelodyConfig if melody else MusicgenConfig
    config = config_cls(text_encoder=T5Config(**text).to_dict(), audio_encoder=audio.to_dict(),
                        decoder=decoder.to_dict())
    model_cls = MusicgenMelodyForConditionalGeneration if melody else MusicgenForConditionalGeneration
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config).eval().to(device)
    if dtype is not None:
        model = model.to(dtype)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=codes, pad_token_id=codes, bos_token_id=codes, do_sample=True,
        guidance_scale=3.0, max_length=1500, top_k=250)
    if melody:
        processor: Any = MelodyProcessor(tokenizer, ChromaSettings(sampling_rate=audio.sampling_rate))
    else:
        features = EncodecFeatureExtractor(feature_size=1, sampling_rate=audio.sampling_rate, padding_value=0.0)
        processor = MusicgenProcessor(feature_extractor=features, tokenizer=tokenizer)
    return LoadedModel(model, processor, model_id, device, melody)
