# Mensajes predeterminados de los correos de Herald (español, tratamiento de usted).

## Comunes a todos los correos

greeting-named = Hola, { $name }:
greeting-anonymous = Hola:
link-fallback = Si el botón no funciona, copie y pegue este enlace en su navegador:
text-button = { $label }:
expiry-minutes =
    { $count ->
        [one] Este enlace caduca en { $count } minuto.
       *[other] Este enlace caduca en { $count } minutos.
    }
expiry-hours =
    { $count ->
        [one] Este enlace caduca en { $count } hora.
       *[other] Este enlace caduca en { $count } horas.
    }
expiry-days =
    { $count ->
        [one] Este enlace caduca en { $count } día.
       *[other] Este enlace caduca en { $count } días.
    }
code-expiry-minutes =
    { $count ->
        [one] Este código caduca en { $count } minuto.
       *[other] Este código caduca en { $count } minutos.
    }
code-expiry-hours =
    { $count ->
        [one] Este código caduca en { $count } hora.
       *[other] Este código caduca en { $count } horas.
    }
code-expiry-days =
    { $count ->
        [one] Este código caduca en { $count } día.
       *[other] Este código caduca en { $count } días.
    }
signature = El equipo de { $brand }
footer-sent-to = Este correo electrónico se envió a { $email }.
footer-automated = Este es un mensaje automático; por favor, no responda a él.

## verify_email

verify_email-subject = Verifique su dirección de correo electrónico para { $brand }
verify_email-preheader = Confirme su dirección de correo electrónico para terminar de configurar su cuenta de { $brand }.
verify_email-heading = Verifique su dirección de correo electrónico
verify_email-body = Confirme que { $email } es su dirección de correo electrónico haciendo clic en el botón de abajo.
verify_email-button = Verificar correo electrónico
verify_email-footer = Ha recibido este correo porque esta dirección se utilizó para registrarse en { $brand }. Si no lo solicitó, puede ignorar este mensaje.

## reset_email

reset_email-subject = Restablezca su contraseña de { $brand }
reset_email-preheader = Use el enlace de este correo para elegir una nueva contraseña.
reset_email-heading = Restablezca su contraseña
reset_email-body = Hemos recibido una solicitud para restablecer la contraseña de su cuenta de { $brand }. Haga clic en el botón de abajo para elegir una nueva.
reset_email-button = Restablecer contraseña
reset_email-footer = Ha recibido este correo porque se solicitó restablecer la contraseña de esta dirección en { $brand }. Si no lo solicitó, ignore este mensaje: su contraseña no cambiará.

## enrollment_email

enrollment_email-subject = Configure la autenticación multifactor para { $brand }
enrollment_email-preheader = Añada un segundo paso de inicio de sesión para proteger su cuenta de { $brand }.
enrollment_email-heading = Proteja su cuenta
enrollment_email-body = Le invitamos a configurar la autenticación multifactor para su cuenta de { $brand }. Una vez activada, iniciar sesión requerirá un segundo paso, lo que mantiene su cuenta protegida incluso si alguien obtiene su contraseña.
enrollment_email-factor =
    Método: { $factor ->
        [otp] aplicación de autenticación (códigos de un solo uso)
        [phone] SMS o llamada telefónica
        [email] correo electrónico
        [push-notification] notificación push
        [webauthn-roaming] llave de seguridad
        [webauthn-platform] huella digital o reconocimiento facial en este dispositivo
       *[other] { $factor }
    }
enrollment_email-button = Configurar la autenticación
enrollment_email-footer = Ha recibido este correo porque se solicitó la autenticación multifactor para su cuenta en { $brand }. Si no lo solicitó, ignore este mensaje.

## welcome_email

welcome_email-subject = Le damos la bienvenida a { $brand }
welcome_email-preheader = Su cuenta de { $brand } está lista.
welcome_email-heading = ¡Le damos la bienvenida a { $brand }!
welcome_email-body = Su cuenta se ha creado y ya puede utilizarla. Nos alegra contar con usted.
welcome_email-login = Ya puede iniciar sesión en { $app }.
welcome_email-button = Iniciar sesión
welcome_email-footer = Ha recibido este correo porque se creó una cuenta con esta dirección en { $brand }. Si no se registró, puede ignorar este mensaje.

## mfa_oob_code

mfa_oob_code-subject = Su código de verificación de { $brand }
mfa_oob_code-preheader = Su código de un solo uso para { $brand } está en este correo.
mfa_oob_code-heading = Su código de verificación
mfa_oob_code-body = Introduzca este código de un solo uso para continuar con la configuración de la autenticación multifactor de su cuenta en { $brand }:
mfa_oob_code-ignore = Si no solicitó este código, puede ignorar este mensaje con total seguridad. No comparta nunca este código con nadie.
mfa_oob_code-footer = Ha recibido este correo porque se solicitó un código de verificación para su cuenta en { $brand }.
