# Mensagens padrão dos e-mails do Herald (português do Brasil, tratamento por "você").

## Comuns a todos os e-mails

greeting-named = Olá, { $name },
greeting-anonymous = Olá,
link-fallback = Se o botão não funcionar, copie e cole este link no seu navegador:
text-button = { $label }:
expiry-minutes =
    { $count ->
        [one] Este link expira em { $count } minuto.
       *[other] Este link expira em { $count } minutos.
    }
expiry-hours =
    { $count ->
        [one] Este link expira em { $count } hora.
       *[other] Este link expira em { $count } horas.
    }
expiry-days =
    { $count ->
        [one] Este link expira em { $count } dia.
       *[other] Este link expira em { $count } dias.
    }
code-expiry-minutes =
    { $count ->
        [one] Este código expira em { $count } minuto.
       *[other] Este código expira em { $count } minutos.
    }
code-expiry-hours =
    { $count ->
        [one] Este código expira em { $count } hora.
       *[other] Este código expira em { $count } horas.
    }
code-expiry-days =
    { $count ->
        [one] Este código expira em { $count } dia.
       *[other] Este código expira em { $count } dias.
    }
signature = Equipe { $brand }
footer-sent-to = Este e-mail foi enviado para { $email }.
footer-automated = Esta é uma mensagem automática. Por favor, não responda.

## verify_email

verify_email-subject = { $brand }: confirme seu endereço de e-mail
verify_email-preheader = Confirme seu endereço de e-mail para concluir a configuração da sua conta { $brand }.
verify_email-heading = Confirme seu endereço de e-mail
verify_email-body = Confirme que { $email } é o seu endereço de e-mail clicando no botão abaixo.
verify_email-button = Confirmar e-mail
verify_email-footer = Você recebeu este e-mail porque este endereço foi usado para criar uma conta { $brand }. Se você não fez essa solicitação, pode ignorar este e-mail com segurança.

## reset_email

reset_email-subject = { $brand }: redefina sua senha
reset_email-preheader = Use o link deste e-mail para escolher uma nova senha.
reset_email-heading = Redefina sua senha
reset_email-body = Recebemos uma solicitação para redefinir a senha da sua conta { $brand }. Clique no botão abaixo para escolher uma nova senha.
reset_email-button = Redefinir senha
reset_email-footer = Você recebeu este e-mail porque foi solicitada a redefinição da senha da conta { $brand } associada a este endereço. Se você não fez essa solicitação, ignore este e-mail: sua senha não será alterada.

## enrollment_email

enrollment_email-subject = { $brand }: configure a autenticação multifator
enrollment_email-preheader = Adicione uma segunda etapa de login para proteger sua conta { $brand }.
enrollment_email-heading = Proteja sua conta
enrollment_email-body = Convidamos você a configurar a autenticação multifator na sua conta { $brand }. Depois de ativada, o login passa a exigir uma segunda etapa, o que mantém sua conta protegida mesmo que alguém descubra sua senha.
enrollment_email-factor =
    Método: { $factor ->
        [otp] aplicativo autenticador (códigos de uso único)
        [phone] SMS ou chamada telefônica
        [email] e-mail
        [push-notification] notificação push
        [webauthn-roaming] chave de segurança
        [webauthn-platform] impressão digital ou reconhecimento facial neste dispositivo
       *[other] { $factor }
    }
enrollment_email-button = Configurar autenticação
enrollment_email-footer = Você recebeu este e-mail porque foi solicitada a autenticação multifator para a sua conta { $brand }. Se você não fez essa solicitação, ignore este e-mail.

## welcome_email

welcome_email-subject = { $brand }: boas-vindas!
welcome_email-preheader = Sua conta { $brand } está pronta.
welcome_email-heading = Boas-vindas!
welcome_email-body = Sua conta { $brand } foi criada e já está pronta para uso. Ficamos felizes em ter você conosco.
welcome_email-login = Agora você já pode entrar em { $app }.
welcome_email-button = Entrar
welcome_email-footer = Você recebeu este e-mail porque uma conta { $brand } foi criada com este endereço. Se não foi você, pode ignorar este e-mail.

## mfa_oob_code

mfa_oob_code-subject = Seu código de verificação para { $brand }
mfa_oob_code-preheader = Seu código de uso único para { $brand } está neste e-mail.
mfa_oob_code-heading = Seu código de verificação
mfa_oob_code-body = Digite este código de uso único para continuar a configuração da autenticação multifator da sua conta { $brand }:
mfa_oob_code-ignore = Se você não pediu este código, pode ignorar este e-mail com segurança. Nunca compartilhe este código com ninguém.
mfa_oob_code-footer = Você recebeu este e-mail porque foi solicitado um código de verificação para a sua conta { $brand }.
