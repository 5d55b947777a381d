namespace Kiln.Runtime.Chat;

/// <summary>
/// A conversation the chat template refuses (a role it does not know, tools it cannot show, its own
/// <c>raise_exception</c>): the caller's request is at fault, so the API answers 400 naming <see cref="ArgumentException.ParamName"/>.
/// </summary>
public sealed class ChatTemplateException : ArgumentException
{
    public ChatTemplateException(string message, string param = "messages", Exception? inner = null)
        : base(message, param, inner)
    {
    }

    public ChatTemplateException()
    {
    }

    public ChatTemplateException(string message)
        : base(message)
    {
    }

    public ChatTemplateException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
