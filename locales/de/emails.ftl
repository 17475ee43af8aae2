# Herald – Standardtexte der E-Mails (Deutsch, Anrede mit „Sie“).

## Für alle E-Mails

greeting-named = Guten Tag { $name },
greeting-anonymous = Guten Tag,
link-fallback = Falls die Schaltfläche nicht funktioniert, kopieren Sie diesen Link und fügen Sie ihn in Ihren Browser ein:
text-button = { $label }:
expiry-minutes =
    { $count ->
        [one] Dieser Link läuft in { $count } Minute ab.
       *[other] Dieser Link läuft in { $count } Minuten ab.
    }
expiry-hours =
    { $count ->
        [one] Dieser Link läuft in { $count } Stunde ab.
       *[other] Dieser Link läuft in { $count } Stunden ab.
    }
expiry-days =
    { $count ->
        [one] Dieser Link läuft in { $count } Tag ab.
       *[other] Dieser Link läuft in { $count } Tagen ab.
    }
code-expiry-minutes =
    { $count ->
        [one] Dieser Code läuft in { $count } Minute ab.
       *[other] Dieser Code läuft in { $count } Minuten ab.
    }
code-expiry-hours =
    { $count ->
        [one] Dieser Code läuft in { $count } Stunde ab.
       *[other] Dieser Code läuft in { $count } Stunden ab.
    }
code-expiry-days =
    { $count ->
        [one] Dieser Code läuft in { $count } Tag ab.
       *[other] Dieser Code läuft in { $count } Tagen ab.
    }
signature = Ihr Team von { $brand }
footer-sent-to = Diese E-Mail wurde an { $email } gesendet.
footer-automated = Dies ist eine automatisch erstellte Nachricht. Bitte antworten Sie nicht darauf.

## verify_email

verify_email-subject = Bestätigen Sie Ihre E-Mail-Adresse für { $brand }
verify_email-preheader = Bestätigen Sie Ihre E-Mail-Adresse, um die Einrichtung Ihres Kontos bei { $brand } abzuschließen.
verify_email-heading = Bestätigen Sie Ihre E-Mail-Adresse
verify_email-body = Bitte bestätigen Sie mit einem Klick auf die Schaltfläche unten, dass { $email } Ihre E-Mail-Adresse ist.
verify_email-button = E-Mail-Adresse bestätigen
verify_email-footer = Sie erhalten diese E-Mail, weil diese Adresse für eine Registrierung bei { $brand } verwendet wurde. Falls Sie dies nicht veranlasst haben, können Sie diese E-Mail ignorieren.

## reset_email

reset_email-subject = Setzen Sie Ihr Passwort für { $brand } zurück
reset_email-preheader = Über den Link in dieser E-Mail können Sie ein neues Passwort festlegen.
reset_email-heading = Passwort zurücksetzen
reset_email-body = Wir haben eine Anfrage erhalten, das Passwort Ihres Kontos bei { $brand } zurückzusetzen. Klicken Sie auf die Schaltfläche unten, um ein neues Passwort festzulegen.
reset_email-button = Passwort zurücksetzen
reset_email-footer = Sie erhalten diese E-Mail, weil für diese Adresse bei { $brand } das Zurücksetzen des Passworts angefordert wurde. Falls Sie dies nicht veranlasst haben, ignorieren Sie diese E-Mail; Ihr Passwort bleibt unverändert.

## enrollment_email

enrollment_email-subject = Richten Sie die Multi-Faktor-Authentifizierung für { $brand } ein
enrollment_email-preheader = Schützen Sie Ihr Konto bei { $brand } mit einem zweiten Anmeldeschritt.
enrollment_email-heading = Schützen Sie Ihr Konto
enrollment_email-body = Sie wurden eingeladen, die Multi-Faktor-Authentifizierung für Ihr Konto bei { $brand } einzurichten. Danach ist bei der Anmeldung ein zweiter Schritt erforderlich, der Ihr Konto auch dann schützt, wenn Ihr Passwort in falsche Hände gerät.
enrollment_email-factor =
    Methode: { $factor ->
        [otp] Authenticator-App (Einmalcodes)
        [phone] SMS oder Anruf
        [email] E-Mail
        [push-notification] Push-Benachrichtigung
        [webauthn-roaming] Sicherheitsschlüssel
        [webauthn-platform] Fingerabdruck oder Gesichtserkennung auf diesem Gerät
       *[other] { $factor }
    }
enrollment_email-button = Authentifizierung einrichten
enrollment_email-footer = Sie erhalten diese E-Mail, weil für Ihr Konto bei { $brand } die Multi-Faktor-Authentifizierung angefordert wurde. Falls Sie dies nicht veranlasst haben, ignorieren Sie diese E-Mail.

## welcome_email

welcome_email-subject = Willkommen bei { $brand }
welcome_email-preheader = Ihr Konto bei { $brand } ist bereit.
welcome_email-heading = Willkommen bei { $brand }!
welcome_email-body = Ihr Konto wurde erstellt und ist einsatzbereit. Wir freuen uns, Sie bei uns begrüßen zu dürfen.
welcome_email-login = Sie können sich jetzt bei { $app } anmelden.
welcome_email-button = Anmelden
welcome_email-footer = Sie erhalten diese E-Mail, weil mit dieser Adresse ein Konto bei { $brand } erstellt wurde. Falls Sie sich nicht registriert haben, können Sie diese E-Mail ignorieren.

## mfa_oob_code

mfa_oob_code-subject = Ihr Bestätigungscode für { $brand }
mfa_oob_code-preheader = Ihr Einmalcode für { $brand } steht in dieser E-Mail.
mfa_oob_code-heading = Ihr Bestätigungscode
mfa_oob_code-body = Geben Sie diesen Einmalcode ein, um die Einrichtung der Multi-Faktor-Authentifizierung für Ihr Konto bei { $brand } fortzusetzen:
mfa_oob_code-ignore = Falls Sie diesen Code nicht angefordert haben, können Sie diese E-Mail ignorieren. Geben Sie diesen Code niemals an andere weiter.
mfa_oob_code-footer = Sie erhalten diese E-Mail, weil für Ihr Konto bei { $brand } ein Bestätigungscode angefordert wurde.
