using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Loading;

/// <summary>Where named tensors come from (a GGUF file, one or many safetensors files), already shape-checked.</summary>
internal interface ITensorSource
{
    bool Contains(string name);

    WeightMatrix Matrix(string name, int rows, int columns);

    float[] Vector(string name, int length);
}

/// <summary>How an architecture names its tensors.</summary>
internal sealed record TensorNames(
    string Embedding,
    string FinalNorm,
    string Classifier,
    Func<int, string, string> Layer)
{
    public static readonly TensorNames HuggingFace = new(
        "model.embed_tokens.weight",
        "model.norm.weight",
        "lm_head.weight",
        (i, part) => $"model.layers.{i}." + part switch
        {
            "attn_norm" => "input_layernorm.weight",
            "q" => "self_attn.q_proj.weight",
            "k" => "self_attn.k_proj.weight",
            "v" => "self_attn.v_proj.weight",
            "o" => "self_attn.o_proj.weight",
            "q_bias" => "self_attn.q_proj.bias",
            "k_bias" => "self_attn.k_proj.bias",
            "v_bias" => "self_attn.v_proj.bias",
            "q_norm" => "self_attn.q_norm.weight",
            "k_norm" => "self_attn.k_norm.weight",
            "ffn_norm" => "post_attention_layernorm.weight",
            "gate" => "mlp.gate_proj.weight",
            "up" => "mlp.up_proj.weight",
            "down" => "mlp.down_proj.weight",
            _ => throw new ArgumentOutOfRangeException(nameof(part)),
        });

    public static readonly TensorNames Gguf = new(
        "token_embd.weight",
        "output_norm.weight",
        "output.weight",
        (i, part) => $"blk.{i}." + part switch
        {
            "attn_norm" => "attn_norm.weight",
            "q" => "attn_q.weight",
            "k" => "attn_k.weight",
            "v" => "attn_v.weight",
            "o" => "attn_output.weight",
            "q_bias" => "attn_q.bias",
            "k_bias" => "attn_k.bias",
            "v_bias" => "attn_v.bias",
            "q_norm" => "attn_q_norm.weight",
            "k_norm" => "attn_k_norm.weight",
            "ffn_norm" => "ffn_norm.weight",
            "gate" => "ffn_gate.weight",
            "up" => "ffn_up.weight",
            "down" => "ffn_down.weight",
            _ => throw new ArgumentOutOfRangeException(nameof(part)),
        });
}
