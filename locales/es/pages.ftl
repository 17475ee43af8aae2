# Los mensajes de las páginas de tickets (español). Los mismos identificadores en cada idioma.

page-footer = { $brand } le ofrece esta página.
page-continue = Continuar
page-back-to-app = Volver a { $app }

## Enlaces que no se pueden usar
page-link-used-title = Enlace ya utilizado
page-link-used = Este enlace ya se ha utilizado. Solicite uno nuevo.
page-link-expired-title = Enlace caducado
page-link-expired = Este enlace ha caducado. Solicite uno nuevo.
page-link-invalid-title = Enlace no válido
page-link-invalid = Este enlace no es válido. Compruebe que ha abierto el enlace completo del correo.
page-session-title = Vuelva a intentarlo
page-session = El formulario caducó o se envió desde otra página. Vuelva a abrir el enlace del correo.
page-too-many-title = Demasiados intentos
page-too-many = Demasiados intentos. Espere un minuto y vuelva a intentarlo.
page-error-title = Algo salió mal
page-error = No se puede completar la operación. Vuelva a intentarlo más tarde.

## Verificación del correo
page-verify-title = Verifique su dirección de correo
page-verify-intro = Confirme que { $email } es su dirección de correo.
page-verify-button = Verificar mi correo
page-verify-done-title = Correo verificado
page-verify-done = Su dirección de correo se ha verificado correctamente.
page-verify-already = Esta cuenta ya está verificada.
page-verify-no-user = La cuenta no existe o el código de verificación no es válido.

## Cambio de contraseña
page-password-title = Cambie su contraseña
page-password-intro = Elija una nueva contraseña para { $email }.
page-password-new = Nueva contraseña
page-password-confirm = Confirme la nueva contraseña
page-password-hint = Use al menos { $min } caracteres. Una frase larga de palabras sin relación es segura y fácil de recordar.
page-password-button = Cambiar la contraseña
page-password-mismatch = Las dos contraseñas no coinciden.
page-password-too-short = La contraseña debe tener al menos { $min } caracteres.
page-password-too-long = La contraseña debe tener como máximo { $max } caracteres.
page-password-weak = Esta contraseña es demasiado fácil de adivinar. Hágala más larga o añada palabras sin relación.
page-password-done-title = Contraseña cambiada
page-password-done = Ya puede iniciar sesión en la aplicación con la nueva contraseña.
page-password-failed = No se puede completar la operación. Vuelva a intentarlo.

## Inscripción MFA
page-mfa-title = Configure la autenticación en dos pasos
page-mfa-otp-intro = Escanee este código QR con una aplicación de autenticación y escriba el código de seis dígitos que muestre.
page-mfa-otp-qr-alt = Código QR para escanear con su aplicación de autenticación
page-mfa-otp-manual = ¿No puede escanearlo? Escriba esta clave en la aplicación:
page-mfa-code = Código de seis dígitos
page-mfa-verify-button = Verificar y activar
page-mfa-otp-wrong = Ese código no es correcto. Compruebe la hora de su dispositivo y escriba el código actual.
page-mfa-email-intro = Enviaremos un código de seis dígitos a { $email }.
page-mfa-email-send = Enviarme un código
page-mfa-email-sent = Hemos enviado un código a { $email }. Caduca en 10 minutos.
page-mfa-email-wrong = Ese código no es correcto o ha caducado.
page-mfa-done-title = La autenticación en dos pasos está activada
page-mfa-done = Su cuenta ahora está protegida con la autenticación en dos pasos.
page-mfa-already = La autenticación en dos pasos ya está activada.
