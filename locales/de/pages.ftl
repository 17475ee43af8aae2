# Die Meldungen der Ticket-Seiten (Deutsch). Dieselben IDs in jeder Sprache.

page-footer = Diese Seite wird Ihnen von { $brand } bereitgestellt.
page-continue = Weiter
page-back-to-app = Zurück zu { $app }

## Links, die nicht verwendet werden können
page-link-used-title = Link bereits verwendet
page-link-used = Dieser Link wurde bereits verwendet. Bitte fordern Sie einen neuen an.
page-link-expired-title = Link abgelaufen
page-link-expired = Dieser Link ist abgelaufen. Bitte fordern Sie einen neuen an.
page-link-invalid-title = Ungültiger Link
page-link-invalid = Dieser Link ist ungültig. Prüfen Sie, ob Sie den vollständigen Link aus der E-Mail geöffnet haben.
page-session-title = Bitte versuchen Sie es erneut
page-session = Das Formular ist abgelaufen oder wurde von einer anderen Seite gesendet. Öffnen Sie den Link aus der E-Mail erneut.
page-too-many-title = Zu viele Versuche
page-too-many = Zu viele Versuche. Warten Sie eine Minute und versuchen Sie es dann erneut.
page-error-title = Etwas ist schiefgelaufen
page-error = Der Vorgang kann nicht abgeschlossen werden. Bitte versuchen Sie es später erneut.

## E-Mail-Bestätigung
page-verify-title = Bestätigen Sie Ihre E-Mail-Adresse
page-verify-intro = Bestätigen Sie, dass { $email } Ihre E-Mail-Adresse ist.
page-verify-button = E-Mail-Adresse bestätigen
page-verify-done-title = E-Mail-Adresse bestätigt
page-verify-done = Ihre E-Mail-Adresse wurde erfolgreich bestätigt.
page-verify-already = Dieses Konto ist bereits bestätigt.
page-verify-no-user = Das Konto existiert nicht oder der Bestätigungscode ist ungültig.

## Passwortänderung
page-password-title = Ändern Sie Ihr Passwort
page-password-intro = Wählen Sie ein neues Passwort für { $email }.
page-password-new = Neues Passwort
page-password-confirm = Neues Passwort bestätigen
page-password-hint = Verwenden Sie mindestens { $min } Zeichen. Lange Folgen unzusammenhängender Wörter sind sicher und leicht zu merken.
page-password-button = Passwort ändern
page-password-mismatch = Die beiden Passwörter stimmen nicht überein.
page-password-too-short = Das Passwort muss mindestens { $min } Zeichen lang sein.
page-password-too-long = Das Passwort darf höchstens { $max } Zeichen lang sein.
page-password-weak = Dieses Passwort ist zu leicht zu erraten. Machen Sie es länger oder fügen Sie unzusammenhängende Wörter hinzu.
page-password-done-title = Passwort geändert
page-password-done = Sie können sich jetzt mit dem neuen Passwort bei der Anwendung anmelden.
page-password-failed = Der Vorgang kann nicht abgeschlossen werden. Bitte versuchen Sie es erneut.

## MFA-Registrierung
page-mfa-title = Zwei-Faktor-Authentifizierung einrichten
page-mfa-otp-intro = Scannen Sie diesen QR-Code mit einer Authenticator-App und geben Sie dann den angezeigten sechsstelligen Code ein.
page-mfa-otp-qr-alt = QR-Code zum Scannen mit Ihrer Authenticator-App
page-mfa-otp-manual = Scannen nicht möglich? Geben Sie stattdessen diesen Schlüssel in der App ein:
page-mfa-code = Sechsstelliger Code
page-mfa-verify-button = Prüfen und aktivieren
page-mfa-otp-wrong = Dieser Code ist nicht korrekt. Prüfen Sie die Uhrzeit Ihres Geräts und geben Sie den aktuellen Code ein.
page-mfa-email-intro = Wir senden einen sechsstelligen Code an { $email }.
page-mfa-email-send = Code per E-Mail senden
page-mfa-email-sent = Wir haben einen Code an { $email } gesendet. Er läuft in 10 Minuten ab.
page-mfa-email-wrong = Dieser Code ist nicht korrekt oder abgelaufen.
page-mfa-done-title = Zwei-Faktor-Authentifizierung ist aktiv
page-mfa-done = Ihr Konto ist jetzt durch Zwei-Faktor-Authentifizierung geschützt.
page-mfa-already = Die Zwei-Faktor-Authentifizierung ist bereits aktiviert.
