# As mensagens das páginas de tickets (português do Brasil). Os mesmos identificadores em cada idioma.

page-footer = Esta página é oferecida por { $brand }.
page-continue = Continuar
page-back-to-app = Voltar para { $app }

## Links que não podem ser usados
page-link-used-title = Link já usado
page-link-used = Este link já foi usado. Peça um novo.
page-link-expired-title = Link expirado
page-link-expired = Este link expirou. Peça um novo.
page-link-invalid-title = Link inválido
page-link-invalid = Este link não é válido. Verifique se você abriu o link completo do e-mail.
page-session-title = Tente novamente
page-session = O formulário expirou ou foi enviado de outra página. Abra o link do e-mail novamente.
page-too-many-title = Tentativas demais
page-too-many = Tentativas demais. Aguarde um minuto e tente novamente.
page-error-title = Algo deu errado
page-error = Não foi possível concluir a operação. Tente novamente mais tarde.

## Verificação de e-mail
page-verify-title = Verifique seu endereço de e-mail
page-verify-intro = Confirme que { $email } é o seu endereço de e-mail.
page-verify-button = Verificar meu e-mail
page-verify-done-title = E-mail verificado
page-verify-done = Seu endereço de e-mail foi verificado com sucesso.
page-verify-already = Esta conta já está verificada.
page-verify-no-user = A conta não existe ou o código de verificação é inválido.

## Troca de senha
page-password-title = Troque sua senha
page-password-intro = Escolha uma nova senha para { $email }.
page-password-new = Nova senha
page-password-confirm = Confirme a nova senha
page-password-hint = Use pelo menos { $min } caracteres. Uma frase longa de palavras sem relação é segura e fácil de lembrar.
page-password-button = Trocar a senha
page-password-mismatch = As duas senhas não coincidem.
page-password-too-short = A senha deve ter pelo menos { $min } caracteres.
page-password-too-long = A senha deve ter no máximo { $max } caracteres.
page-password-weak = Esta senha é fácil demais de adivinhar. Deixe-a mais longa ou acrescente palavras sem relação.
page-password-done-title = Senha trocada
page-password-done = Agora você pode entrar no aplicativo com a nova senha.
page-password-failed = Não foi possível concluir a operação. Tente novamente.

## Cadastro de MFA
page-mfa-title = Configure a autenticação em dois fatores
page-mfa-otp-intro = Escaneie este código QR com um aplicativo autenticador e digite o código de seis dígitos exibido.
page-mfa-otp-qr-alt = Código QR para escanear com seu aplicativo autenticador
page-mfa-otp-manual = Não consegue escanear? Digite esta chave no aplicativo:
page-mfa-code = Código de seis dígitos
page-mfa-verify-button = Verificar e ativar
page-mfa-otp-wrong = Esse código não está correto. Verifique o horário do seu dispositivo e digite o código atual.
page-mfa-email-intro = Enviaremos um código de seis dígitos para { $email }.
page-mfa-email-send = Enviar um código por e-mail
page-mfa-email-sent = Enviamos um código para { $email }. Ele expira em 10 minutos.
page-mfa-email-wrong = Esse código não está correto ou expirou.
page-mfa-done-title = A autenticação em dois fatores está ativada
page-mfa-done = Sua conta agora está protegida pela autenticação em dois fatores.
page-mfa-already = A autenticação em dois fatores já está ativada.
