{ Test driver for the filemap unit, run by filemap-ffi/tests/pascal.rs.
  Reads commands from standard input, one per line, and answers on
  standard output:
    open NAME [SIZE [MAX]] -> Size := SIZE, MaxCapacity := MAX (0 when not
                          given); OpenMap -> "opened existed=0|1" or "raised STATUS"
    caps               -> "capacity C max M" (Capacity, MaxCapacity)
    write L1|L2|...    -> MapStrings := lines; WriteMap -> "written G" or "raised STATUS"
    read               -> ReadMap -> "lines L1|L2|..."
    wait               -> deliver queued changes until one OnChange fired
                          (20 s at most) -> "timeout" if none
    count N            -> N times Lock; ReadMap; +1; WriteMap; Unlock -> "counted"
    close              -> CloseMap (stopping the watch thread) -> "closed MS",
                          the milliseconds it took
  Every OnChange prints "changed L1|L2|...". }
program fmtest;

{$mode objfpc}{$H+}

uses
  {$ifdef unix}cthreads,{$endif}
  Classes, SysUtils, filemap;

type
  THandler = class
    Fired: Integer;
    procedure Changed(Sender: TObject);
  end;

var
  Map: TFileMap;
  Handler: THandler;
  Line, Cmd, Arg, Rest: string;
  Space, I, N: Integer;
  Deadline, Started: QWord;
  Before: Integer;

function Joined(Strings: TStrings): string;
var
  J: Integer;
begin
  Result := '';
  for J := 0 to Strings.Count - 1 do
  begin
    if J > 0 then
      Result := Result + '|';
    Result := Result + Strings[J];
  end;
end;

procedure THandler.Changed(Sender: TObject);
begin
  Inc(Fired);
  WriteLn('changed ', Joined(TFileMap(Sender).MapStrings));
  Flush(Output);
end;

procedure Say(const S: string);
begin
  WriteLn(S);
  Flush(Output);
end;

begin
  Handler := THandler.Create;
  Map := TFileMap.Create(nil);
  Map.OnChange := @Handler.Changed;
  while not EOF(Input) do
  begin
    ReadLn(Line);
    Space := Pos(' ', Line);
    if Space = 0 then
    begin
      Cmd := Line;
      Arg := '';
    end
    else
    begin
      Cmd := Copy(Line, 1, Space - 1);
      Arg := Copy(Line, Space + 1, Length(Line));
    end;
    try
      if Cmd = 'open' then
      begin
        Map.MaxCapacity := 0;
        Space := Pos(' ', Arg);
        if Space > 0 then
        begin
          Rest := Copy(Arg, Space + 1, Length(Arg));
          Arg := Copy(Arg, 1, Space - 1);
          Space := Pos(' ', Rest);
          if Space > 0 then
          begin
            Map.Size := StrToInt(Copy(Rest, 1, Space - 1));
            Map.MaxCapacity := StrToInt(Copy(Rest, Space + 1, Length(Rest)));
          end
          else
            Map.Size := StrToInt(Rest);
        end;
        Map.MapName := Arg;
        Map.OpenMap;
        Say('opened existed=' + IntToStr(Ord(Map.ExistsAlready)));
      end
      else if Cmd = 'write' then
      begin
        Map.MapStrings.Delimiter := '|';
        Map.MapStrings.StrictDelimiter := True;
        Map.MapStrings.DelimitedText := Arg;
        Map.WriteMap;
        Say('written ' + IntToStr(Map.Generation));
      end
      else if Cmd = 'caps' then
        Say('capacity ' + IntToStr(Map.Capacity) + ' max ' + IntToStr(Map.MaxCapacity))
      else if Cmd = 'read' then
      begin
        Map.ReadMap;
        Say('lines ' + Joined(Map.MapStrings));
      end
      else if Cmd = 'wait' then
      begin
        Before := Handler.Fired;
        Deadline := GetTickCount64 + 20000;
        while (Handler.Fired = Before) and (GetTickCount64 < Deadline) do
          Map.ProcessChanges(100);
        if Handler.Fired = Before then
          Say('timeout');
      end
      else if Cmd = 'count' then
      begin
        N := StrToInt(Arg);
        for I := 1 to N do
        begin
          Map.Lock;
          try
            Map.ReadMap;
            if Map.MapStrings.Count = 0 then
              Map.MapStrings.Text := '1'
            else
              Map.MapStrings[0] := IntToStr(StrToInt(Map.MapStrings[0]) + 1);
            Map.WriteMap;
          finally
            Map.Unlock;
          end;
        end;
        Say('counted');
      end
      else if Cmd = 'close' then
      begin
        Started := GetTickCount64;
        Map.CloseMap;
        Say('closed ' + IntToStr(GetTickCount64 - Started));
      end
      else
        Say('unknown command ' + Cmd);
    except
      on E: EFileMapError do
        Say('raised ' + IntToStr(E.Status) + ' ' + E.Message);
    end;
  end;
  Map.Free;
  Handler.Free;
end.
