using Kiln.Runtime.Chat;

namespace Kiln.Tests.Functions;

/// <summary>
/// Each family against the format its makers document (Meta's Llama 3 and Llama 2 prompt formats, Mistral's
/// instruct format, Qwen2's ChatML), and detection from tokenizer_config.json.
/// </summary>
public sealed class ChatTemplateTests : IDisposable
{
    private static readonly ChatMessage[] Conversation =
    [
        new("system", "You are a helpful AI assistant for travel tips and recommendations"),
        new("user", "What is France's capital?"),
        new("assistant", "Bonjour! The capital of France is Paris!"),
        new("user", "What can I do there?"),
    ];

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "kiln-tests", "chat-" + Guid.NewGuid().ToString("N"));

    public ChatTemplateTests() => Directory.CreateDirectory(_directory);

    [Fact]
    public void Llama3_RendersHeadersEotAndTheAssistantHeader()
    {
        var template = ChatTemplate.FromTemplate("{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>{% endfor %}");
        Assert.Equal(ChatTemplateFamily.Llama3, template.Family);
        Assert.True(template.IncludesBos);
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful AI assistant for travel tips and recommendations<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is France's capital?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nBonjour! The capital of France is Paris!<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nWhat can I do there?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            template.Render(Conversation));
    }

    [Fact]
    public void Llama2_PutsTheSystemPromptInTheFirstInstBlock()
    {
        var template = ChatTemplate.FromTemplate("{% if messages[0]['role'] == 'system' %}...<<SYS>>\\n' + system_message + '\\n<</SYS>>...[INST] ' + content.strip() + ' [/INST]");
        Assert.Equal(ChatTemplateFamily.Llama2, template.Family);
        Assert.Equal(
            "<s>[INST] <<SYS>>\nYou are a helpful AI assistant for travel tips and recommendations\n<</SYS>>\n\nWhat is France's capital? [/INST]" +
            " Bonjour! The capital of France is Paris! </s><s>[INST] What can I do there? [/INST]",
            template.Render(Conversation));
    }

    [Fact]
    public void Mistral_AlternatesInstBlocksWithEosAfterAnswers()
    {
        var template = ChatTemplate.FromTemplate("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}");
        Assert.Equal(ChatTemplateFamily.Mistral, template.Family);
        ChatMessage[] messages =
        [
            new("user", "What is your favourite condiment?"),
            new("assistant", "Well, I'm quite partial to a good squeeze of fresh lemon juice."),
            new("user", "Do you have mayonnaise recipes?"),
        ];
        Assert.Equal(
            "<s>[INST] What is your favourite condiment? [/INST]Well, I'm quite partial to a good squeeze of fresh lemon juice.</s>[INST] Do you have mayonnaise recipes? [/INST]",
            template.Render(messages));
        Assert.Equal("<s>[INST] Be brief.\n\nHi [/INST]", template.Render([new("system", "Be brief."), new("user", "Hi")]));
    }

    [Fact]
    public void ChatMl_Qwen2_AddsItsDefaultSystemPromptWhenNoneIsGiven()
    {
        var template = ChatTemplate.FromTemplate("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}");
        Assert.Equal(ChatTemplateFamily.ChatMl, template.Family);
        Assert.False(template.IncludesBos);
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
            template.Render([new("user", "Hello")]));
        Assert.Equal(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
            template.Render([new("developer", "Be brief."), new("user", "Hello")]));
    }

    [Fact]
    public void ChatMl_IsTheFallbackWithoutADefaultSystemPrompt()
    {
        Assert.Same(ChatTemplate.ChatMl, ChatTemplate.FromTemplate(null));
        Assert.Same(ChatTemplate.ChatMl, ChatTemplate.FromTemplate("{{ messages | some_unknown_format }}"));
        Assert.Equal("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", ChatTemplate.ChatMl.Render([new("user", "Hello")]));
    }

    [Fact]
    public void Detect_ReadsTokenizerConfigWithStringOrArrayTemplatesAndTokenObjects()
    {
        string path = Write("{\"bos_token\": {\"content\": \"<BOS>\", \"lstrip\": false}, \"chat_template\": \"<|start_header_id|>{{ x }}\"}");
        var template = ChatTemplate.Detect(path);
        Assert.Equal(ChatTemplateFamily.Llama3, template.Family);
        Assert.StartsWith("<BOS><|start_header_id|>user", template.Render([new("user", "x")]), StringComparison.Ordinal);

        Write("{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"<|im_start|>\"}, {\"name\": \"default\", \"template\": \"[INST] <<SYS>>\"}]}");
        Assert.Equal(ChatTemplateFamily.Llama2, ChatTemplate.Detect(_directory).Family); // a directory finds its tokenizer_config.json
    }

    [Fact]
    public void Detect_FallsBackToChatMlForMissingOrUnreadableConfigs()
    {
        Assert.Same(ChatTemplate.ChatMl, ChatTemplate.Detect(null));
        Assert.Same(ChatTemplate.ChatMl, ChatTemplate.Detect(Path.Combine(_directory, "absent.json")));
        Assert.Same(ChatTemplate.ChatMl, ChatTemplate.Detect(Write("{ not json")));
        Assert.Same(ChatTemplate.ChatMl, ChatTemplate.Detect(Write("{\"bos_token\": \"<s>\"}")));
    }

    [Fact]
    public void InstFormats_RejectConversationsTheyCannotExpress()
    {
        var mistral = ChatTemplate.FromTemplate("[INST]");
        var error = Assert.Throws<ArgumentException>(() => mistral.Render([new("user", "a"), new("user", "b")]));
        Assert.Equal("messages", error.ParamName);
        Assert.Throws<ArgumentException>(() => mistral.Render([new("user", "a"), new("assistant", "b")]));
        Assert.Throws<ArgumentException>(() => ChatTemplate.ChatMl.Render([]));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Write(string json)
    {
        string path = Path.Combine(_directory, "tokenizer_config.json");
        File.WriteAllText(path, json);
        return path;
    }
}
